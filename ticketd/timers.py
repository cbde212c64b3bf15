"""Per-status timers as database rows: armed on a status change, fired once by the sweep.

Due times are absolute (naive UTC) in the `timers` table, so a restart or a
sleeping laptop's clock jump only makes a timer fire late, never twice or
never (issue 5). Each firing claims its row with UPDATE ... WHERE
state = 'armed', so several daemons and workers fire it exactly once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from outbound.outbox import queue_notices
from ticketd.app import App
from ticketd.assignment import conversation_of, departed, give, group_lost, pick, unassign, wait
from ticketd.clock import iso, utcnow
from ticketd.domain import timers as plan_of
from ticketd.domain.assignment import available
from ticketd.domain.conversation import Shown
from ticketd.domain.notices import AUTO_GENERATED, Notice
from ticketd.domain.statuses import Status
from ticketd.repeating_failures import RepeatingFailures
from ticketd.store import tickets as store
from ticketd.store import timers as timer_rows
from ticketd.store.absences import rules_now
from ticketd.store.assignment import open_counts
from ticketd.store.db import reading
from ticketd.store.read_models import event_rows, latest_messages
from ticketd.store.timers import armed as armed  # re-exported: a ticket's armed timers

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("ticketd.timers")
# A template broken while the daemon runs fails the same timers the same way every sweep.
_failures = RepeatingFailures(log)

ACTOR = "system:timers"
# A ticket whose first mail named no address has requester "" (ticketd.domain.requester): its wait's
# timers still warn and close, with no mail that could only fail at delivery and tell the assignee so.
NO_ADDRESS = "no mail sent: the ticket has no address to write to"


def on_status_change(conn: Connection, app: App, ticket_id: int, status: str, now: datetime) -> None:
    """Cancel the ticket's armed timers and arm the ones rules.yaml gives `status`.

    Its respond clock only while the customer's latest mail waits for an
    answer (docs/rules.md respond_within), whatever moved the status: a
    customer's reply does (their mail is stored first), an agent's
    commands-only `#status` or a wake-up on an answered ticket does not.
    """
    timer_rows.cancel_armed(conn, ticket_id, now)
    ticket = store.get_ticket(conn, ticket_id)
    respond = _respond_due(app, status, now) is not None and _customer_waits(conn, ticket_id)
    _arm(conn, app, ticket_id, status, now, postponed_until=ticket["postponed_until"], dev_due=ticket["dev_due"],
         respond=respond)


def on_date_change(conn: Connection, app: App, ticket_id: int, status: str, now: datetime) -> None:
    """A new wake-up or due date on a ticket that stays in its status: only the timers of that date move.

    A second `#postpone` (or `#dev`) is no status change (PRODUCT.md: the
    status stays, the date changes): a respond clock keeps its deadline, as
    after any commands-only mail (docs/rules.md respond_within), and a clock
    that ran out is not given back.
    """
    timer_rows.cancel_armed_of_kinds(conn, ticket_id, plan_of.DATED_KINDS, now)
    ticket = store.get_ticket(conn, ticket_id)
    planned = [p for p in plan_of.plan(status, app.rules.timer(status), now, postponed_until=ticket["postponed_until"],
                                       dev_due=ticket["dev_due"], business_hours=app.rules.business_hours)
               if p.kind in plan_of.DATED_KINDS]
    if planned:
        timer_rows.arm_timers(conn, ticket_id, status, [(p.kind, p.due_at) for p in planned], now)


def on_ticket_opened(conn: Connection, app: App, ticket_id: int, now: datetime, *, awaits_answer: bool = True) -> None:
    """Arm the timers of `new` on a ticket just created: nothing to cancel, nothing postponed.

    No respond clock when its mail awaits no answer (`awaits_answer` False):
    an auto-generated mail (PRODUCT.md "Loops and robots"), and with no
    wait to count who missed it, `on_breach: reassign` handed the ticket
    round the group for ever (docs/rules.md respond_within).
    """
    _arm(conn, app, ticket_id, Status.NEW.value, now, respond=awaits_answer)


def restart_wait(conn: Connection, app: App, ticket_id: int, status: str, now: datetime) -> None:
    """An agent's public reply on a ticket that waits for the customer: its warn / close count from this reply.

    PRODUCT.md: waiting_customer warns, then closes, when the customer is
    silent; docs/rules.md: solution_proposed does it "as waiting_customer
    does". An agent who writes to them again (another question, a revised
    proposal) asks anew: silence about the earlier words is no silence
    about these, and the close would name an answer they never owed.
    """
    if status in plan_of.WAITING_STATUSES:
        on_status_change(conn, app, ticket_id, status, now)


def _arm(conn: Connection, app: App, ticket_id: int, status: str, now: datetime, *,
         postponed_until: datetime | None = None, dev_due: datetime | None = None, respond: bool = True) -> None:
    planned = [p for p in plan_of.plan(status, app.rules.timer(status), now, postponed_until=postponed_until,
                                       dev_due=dev_due, business_hours=app.rules.business_hours)
               if respond or p.kind != plan_of.RESPOND]
    if planned:
        timer_rows.arm_timers(conn, ticket_id, status, [(p.kind, p.due_at) for p in planned], now)


def _respond_due(app: App, status: str, now: datetime) -> datetime | None:
    """When a `respond_within` clock of `status` started now runs out; None if the status has none."""
    planned = [p for p in plan_of.plan(status, app.rules.timer(status), now, business_hours=app.rules.business_hours)
               if p.kind == plan_of.RESPOND]
    return planned[0].due_at if planned else None


def _unanswered_clock(conn: Connection, ticket_id: int) -> dict | None:
    """The ticket's armed respond clock that no public agent reply has answered yet, if any."""
    running = timer_rows.armed_of_kind_answered(conn, ticket_id, plan_of.RESPOND)
    if running is None or running.pop("answered"):
        return None
    return running


def start_response_clock(conn: Connection, app: App, ticket_id: int, status: str, now: datetime) -> None:
    """A customer wrote and the status stays: start `respond_within` unless an unanswered clock runs.

    An unanswered clock is left alone, so the oldest unanswered message keeps
    its deadline; otherwise the clock counts from this message (issue 5).
    """
    due = _respond_due(app, status, now)
    if due is None:
        return
    # One read for both questions (the clock, and whether it was answered): a customer's every reply asks them.
    running = timer_rows.armed_of_kind_answered(conn, ticket_id, plan_of.RESPOND)
    if running is not None and not running["answered"]:
        return
    # PRODUCT.md respond-within: a public agent reply answered any clock still
    # armed (it would fire as "answered"), so this follow-up needs its own.
    if running is not None:
        timer_rows.cancel_timer(conn, running["id"], now)
    timer_rows.arm_timer(conn, ticket_id, plan_of.RESPOND, status, due, now)


def answer_respond_clock(conn: Connection, ticket_id: int, now: datetime) -> None:
    """A public agent reply answered the customer: their respond clock stops, until they write again.

    docs/rules.md: `respond_within` counts from the customer's mail that waits
    for an answer; a clock left armed would show as due in `#summary` and
    `ticketd status` though nothing is.
    """
    while (clock := timer_rows.armed_of_kind(conn, ticket_id, plan_of.RESPOND)) is not None:
        timer_rows.cancel_timer(conn, clock["id"], now)


def clock_for_late_assignment(conn: Connection, app: App, ticket: dict, now: datetime) -> bool:
    """A waiting ticket given out with no respond clock while its customer waits: arm a whole one; whether it did.

    Its clock ran out while nobody was available to take it (the breach was
    recorded, nobody could be given it), and nothing would ever remind the
    agent it finally goes to. The first assignment of a fresh ticket finds
    the clock the customer's mail started and leaves it alone.
    """
    due = _respond_due(app, ticket["status"], now)
    if due is None or timer_rows.armed_of_kind(conn, ticket["id"], plan_of.RESPOND) is not None:
        return False
    if not _customer_waits(conn, ticket["id"]):
        return False
    timer_rows.arm_timer(conn, ticket["id"], plan_of.RESPOND, ticket["status"], due, now)
    return True


def restart_unanswered_clock(conn: Connection, app: App, ticket: dict, now: datetime) -> None:
    """An agent passing a ticket on gives the next one a whole `respond_within`, as a breach's reassignment does.

    Only an unanswered clock: an answered one fires as answered. A customer
    who waits with no clock left (it ran out and everyone available had
    missed the wait, or on_breach: notify) gets one again: docs/rules.md,
    a hand-over is a change. The caller decides that the ticket changes
    hands between agents (the first assignment keeps the clock the
    customer's mail started).
    """
    due = _respond_due(app, ticket["status"], now)
    if due is None:
        return
    if (running := _unanswered_clock(conn, ticket["id"])) is not None:
        timer_rows.cancel_timer(conn, running["id"], now)
    elif (timer_rows.armed_of_kind(conn, ticket["id"], plan_of.RESPOND) is not None
          or not _customer_waits(conn, ticket["id"])):
        return
    timer_rows.arm_timer(conn, ticket["id"], plan_of.RESPOND, ticket["status"], due, now)


def fire_due_timers(app: App, limit: int = 200) -> int:
    """Fire every armed timer whose time has come; how many this process fired."""
    now = utcnow()
    with reading(app.engine) as conn:
        due = timer_rows.due_armed_kinds(conn, now, limit)
        # Read after the due timers: a mail taken in by their due time is in line by now, or processed.
        in_line = timer_rows.oldest_mail_in_line(conn) if due else None
    fired = 0
    for timer_id, ticket_id, kind, due_at in due:
        if plan_of.held_by_mail_in_line(kind, due_at, in_line):
            continue   # its answer may be in line: the next sweep fires it if it still stands
        try:
            if _fire_one(app, timer_id, ticket_id):
                fired += 1
            _failures.worked()
        except Exception:
            _failures.failed("timer %s of ticket %s failed; it stays armed for the next sweep", timer_id, ticket_id)
    return fired


def _fire_one(app: App, timer_id: int, ticket_id: int) -> bool:
    outbox_ids: list[int] = []
    with app.engine.begin() as conn:
        # The ticket first, then the timer row: the same lock order as a
        # status change (which holds the ticket and cancels timers).
        ticket = store.lock_ticket(conn, ticket_id)
        now = utcnow()
        timer = timer_rows.claim_timer(conn, timer_id, now)
        if timer is None:
            return False   # another daemon or worker fired it, or a status change cancelled it
        if ticket is None or ticket["status"] != timer["status"]:
            return True    # the ticket moved on before the sweep came round
        late = (now - timer["due_at"]).total_seconds()
        notices = _HANDLERS[timer["kind"]](conn, app, ticket, timer, now)
        outbox_ids = queue_notices(conn, app, notices, now)
    for outbox_id in outbox_ids:
        app.enqueue("send_mail", (outbox_id,))
    log.info("timer %s (%s) fired on ticket %s, %.1fs after due", timer_id, timer["kind"], ticket_id, late)
    return True


def _named(app: App, email: str) -> str:
    """An agent as colleagues read them: `Name <address>` (the address alone if rules.yaml no longer has them)."""
    agent = app.rules.agent(email)
    return f"{agent.name} <{agent.email}>" if agent is not None else email


def _breach_notice(app: App, ticket: dict, email: str, what: str, reason: str, shown: Shown | None = None, *,
                   reminder: bool = False, handed_to: str | None = None) -> Notice:
    """A timer's warning to one agent; with `shown`, the conversation for someone who has not seen it.

    `reminder`: a date the agent set came (a wake-up, a due date), nothing was missed.
    `handed_to`: the ticket went to this colleague; the mail asks this agent for nothing more.
    """
    context: dict = {"timer": what, "reason": reason, "reminder": reminder, "handed_to": handed_to}
    if shown is not None:
        context.update(conversation=shown.messages, conversation_omitted=shown.omitted)
    return Notice(template="agent/timer_breached", recipient=email, ticket_id=ticket["id"], context=context,
                  auto_submitted=AUTO_GENERATED, agent_reply_to=email,
                  attach_from=shown.attach_from if shown is not None else ())


def _respond(conn, app: App, ticket: dict, timer: dict, now: datetime) -> list[Notice]:
    status = timer["status"]
    spec = app.rules.timer(status)
    if timer_rows.agent_replied_since(conn, ticket["id"], timer["created_at"]):
        return []   # answered in time for this clock: no breach
    what = plan_of.describe(plan_of.RESPOND, status, spec)
    store.add_event(conn, ticket["id"], now, ACTOR, "timer_breached", from_value=ticket["assignee"],
                    reason=what, rules_hash=app.rules.digest)
    current = ticket["assignee"]
    on_breach = spec.on_breach if spec is not None else "notify"
    group = ticket["group_name"]
    missed: list[str] = []
    if on_breach == "reassign" and group:
        # docs/rules.md on_breach: reassign: never back to an agent who already
        # missed this wait, or the ticket bounces between two agents for ever.
        missed = _missed_this_wait(conn, ticket["id"])
        agent = pick(conn, app.rules, group, now, exclude=(*missed, *([current] if current else [])))
        absent = current is not None and not _at_desk(conn, app, current, now)
        if agent is None and absent:
            # An agent at the desk who missed this wait before still reads it; the absent assignee would not.
            agent = pick(conn, app.rules, group, now, exclude=(current,))
        if agent is not None:
            # The event's reason names the timer; each agent's mail says what it means for them, once.
            before = _named(app, current) if current else None
            yours = "it is yours now" + (f", from {before}" if before else "")
            notices = give(conn, app, ticket, agent, now, ACTOR, f"{what} breached", template="agent/timer_breached",
                           context={"timer": what, "reason": yours})
            if current:
                notices.append(_breach_notice(app, ticket, current, what, f"reassigned to {_named(app, agent.email)}",
                                              handed_to=_named(app, agent.email)))
            # The new assignee gets a fresh clock of their own.
            timer_rows.arm_timer(conn, ticket["id"], plan_of.RESPOND, status, _respond_due(app, status, now), now)
            return notices
        if absent and group in app.rules.groups:
            return _left_to_group(conn, app, ticket, what, now)
    recipients = [current] if current else [
        a.email for a in rules_now(conn, app.rules, now).members(group or "") if not a.away]
    reason = _unreassigned_reason(conn, app, group, missed, current, now) if on_breach == "reassign" else \
        "on_breach: notify"
    # An unassigned ticket's group has never seen what the customer wrote.
    shown = conversation_of(conn, ticket["id"], rules=app.rules) if recipients and not current else None
    return [_breach_notice(app, ticket, email, what, reason, shown) for email in recipients]


def _at_desk(conn: Connection, app: App, email: str, now: datetime) -> bool:
    """Whether the address is an agent of rules.yaml who is not away (by the file or by their own #away)."""
    agent = rules_now(conn, app.rules, now).agent(email)
    return agent is not None and not agent.away


def _left_to_group(conn: Connection, app: App, ticket: dict, what: str, now: datetime) -> list[Notice]:
    """Nobody can take a breached ticket from its absent assignee: unassigned, it waits in its group.

    Left with them it would wait unseen for good (docs/rules.md): no clock
    runs after the breach and the unassigned sweep never looks at an
    assigned ticket. Waiting, it goes to the first agent available as any
    waiting ticket whose clock ran out does: with a whole respond_within
    and the notice saying it is already overdue (clock_for_late_assignment).
    A max_open assignee is at the desk and keeps it: unassigned, it would
    free their slot and come straight back to them.
    """
    former, group = ticket["assignee"], ticket["group_name"]
    gone = app.rules.agent(former) is None
    unassign(conn, app, ticket, now, departed(former) if gone else f"{former} is away and nobody else in {group} "
             "can take it", actor=ACTOR)
    wait(conn, app, ticket["id"], group, now, ACTOR)
    reason = f"nobody available to take it; it waits in {group} for the first agent available"
    # A former agent's mailbox gets no more of the ticket; the away agent learns it is no longer theirs.
    notices = [] if gone else [_breach_notice(app, ticket, former, what, reason, handed_to=f"the {group} group")]
    # As for any unassigned ticket that breaches: the group's agents not away (at max_open) are told.
    present = [a.email for a in rules_now(conn, app.rules, now).members(group) if not a.away]
    shown = conversation_of(conn, ticket["id"], rules=app.rules) if present else None
    return notices + [_breach_notice(app, ticket, email, what, reason, shown) for email in present]


def _missed_this_wait(conn: Connection, ticket_id: int) -> list[str]:
    """The agents whose respond clock ran out since the customer's latest waiting mail (their breach events)."""
    latest, _ = latest_messages(conn, ticket_id, plan_of.WAITING_LOOKBACK, 0)
    return plan_of.missed_in_wait(event_rows(conn, ticket_id), plan_of.wait_started(latest))


def _unreassigned_reason(conn: Connection, app: App, group: str | None, missed: list[str], current: str | None,
                         now: datetime) -> str:
    """Why a reassigning breach left the ticket where it is: everyone available missed this wait, or nobody else is.

    Either way no clock is armed again (docs/rules.md): the next one starts
    when the customer writes, an agent answers, or someone `#assign`s it.
    """
    if (lost := group_lost(app, group)) is not None:
        # Not a matter of who is available: no group of the rules holds the ticket.
        stays = f"; it stays with {_named(app, current)}" if current else ""
        return f"{lost}, so nobody can be picked for it{stays}; give it to a group or an agent with #assign"
    members = rules_now(conn, app.rules, now).members(group or "")
    counts = open_counts(conn, (a.email for a in members))
    others = [a for a in members if a.email != current and available(a, counts)]
    if group and others and all(a.email in missed for a in others):
        names = ", ".join(_named(app, email) for email in missed)
        stays = f"; it stays with {_named(app, current)}" if current else ""
        return f"everyone available in {group} has missed it in this wait ({names}){stays}"
    return "nobody else available to take it"


def _warn(conn, app: App, ticket: dict, timer: dict, now: datetime) -> list[Notice]:
    close = timer_rows.armed_of_kind(conn, ticket["id"], plan_of.CLOSE)
    close_at = close["due_at"] if close is not None else None
    # The grace as rules.yaml gives it now, else the one armed between the two timers.
    grace = (plan_of.grace_after_warning(timer["status"], app.rules.timer(timer["status"]))
             or (close_at - timer["due_at"] if close_at is not None else None))
    if close is not None and (later := plan_of.close_after_late_warning(now, close_at, grace)):
        # A warning sent late still gives the whole grace: never a closing time already past.
        timer_rows.cancel_timer(conn, close["id"], now)
        timer_rows.arm_timer(conn, ticket["id"], plan_of.CLOSE, timer["status"], later, now)
        close_at = later
    what = plan_of.describe(plan_of.WARN, timer["status"], app.rules.timer(timer["status"]))
    store.add_event(conn, ticket["id"], now, ACTOR, "waiting_reminder", to_value=ticket["requester"] or None,
                    reason=what if ticket["requester"] else f"{what}; {NO_ADDRESS}", rules_hash=app.rules.digest)
    if not ticket["requester"]:
        return []
    return [Notice(template="requester/waiting_reminder", recipient=ticket["requester"], ticket_id=ticket["id"],
                   context={"close_at": close_at, "status": timer["status"]},
                   auto_submitted=AUTO_GENERATED, lifecycle=True)]


def _customer_waits(conn: Connection, ticket_id: int) -> bool:
    """Whether the customer's latest mail on the ticket waits for a public agent reply."""
    latest, _ = latest_messages(conn, ticket_id, plan_of.WAITING_LOOKBACK, 0)
    return plan_of.customer_waits(latest)


def _set_status(conn, app: App, ticket: dict, status: str, now: datetime, kind: str, reason: str) -> None:
    # The date of the status left goes (a woken ticket sleeps no more); `reason` keeps it for the history.
    values = {"status": status, **plan_of.dates_left_behind(ticket, status)}
    if status == Status.CLOSED.value:
        values["closed_at"] = now
    store.update_ticket(conn, ticket["id"], now, **values)
    store.add_event(conn, ticket["id"], now, ACTOR, kind, from_value=ticket["status"], to_value=status,
                    reason=reason, rules_hash=app.rules.digest)
    on_status_change(conn, app, ticket["id"], status, now)


def _close(conn, app: App, ticket: dict, timer: dict, now: datetime) -> list[Notice]:
    what = plan_of.describe(plan_of.CLOSE, timer["status"], app.rules.timer(timer["status"]))
    _set_status(conn, app, ticket, Status.CLOSED.value, now, "auto_closed",
                what if ticket["requester"] else f"{what}; {NO_ADDRESS}")
    if not ticket["requester"]:
        return []
    unanswered = ("no answer to the solution we proposed" if timer["status"] == Status.SOLUTION_PROPOSED.value
                  else "no answer while we waited for you")
    return [Notice(template="requester/ticket_closed", recipient=ticket["requester"], ticket_id=ticket["id"],
                   context={"reason": unanswered}, auto_submitted=AUTO_GENERATED, lifecycle=True)]


def _wake(conn, app: App, ticket: dict, timer: dict, now: datetime) -> list[Notice]:
    # docs/rules.md: an answered ticket wakes with no clock to breach (on_status_change).
    until = ticket["postponed_until"] or timer["due_at"]
    _set_status(conn, app, ticket, Status.OPEN.value, now, "status", f"postponed until {iso(until)} reached")
    if ticket["assignee"]:
        # docs/rules.md "Time zones": the history keeps UTC, the agent reads their own zone.
        shown = plan_of.local_time(until, app.rules.zone_of(ticket["assignee"]))
        return [_breach_notice(app, ticket, ticket["assignee"], f"postponed until {shown}, reached",
                               "the ticket is open again", reminder=True)]
    return []


def _due(conn, app: App, ticket: dict, timer: dict, now: datetime) -> list[Notice]:
    # Two reminders when rules.yaml sets remind_before: that long before the
    # due date, and on it (domain/timers.plan).
    if plan_of.reminder_overtaken(timer["due_at"], ticket["dev_due"], now):
        return []   # fired late, past the due date: the due date's own reminder says it
    ahead = ticket["dev_due"] is not None and timer["due_at"] < ticket["dev_due"]

    def due_text(when: str) -> str:
        return (f"development due {when}" + (" (coming up)" if ahead else ", reached")
                + (f", {ticket['dev_tracker_key']}" if ticket["dev_tracker_key"] else ""))

    def shown_to(email: str) -> str:   # docs/rules.md "Time zones": each agent reads their own zone
        return due_text(plan_of.local_time(ticket["dev_due"], app.rules.zone_of(email))
                        if ticket["dev_due"] is not None else "?")

    what = due_text(iso(ticket["dev_due"]))   # the history keeps UTC
    # `#dev <engineer>` may name anyone (a bare name, an outside address); the
    # reminder shows agent-only detail and a reply address that answers the
    # customer, so the engineer gets it only as an agent of rules.yaml.
    engineer = ticket["dev_engineer"] if app.rules.agent(ticket["dev_engineer"] or "") else None
    people = [p for p in dict.fromkeys([ticket["assignee"], engineer]) if p]
    # The history names who was reminded (PRODUCT.md: who, what, to whom), not whom `#dev` named.
    store.add_event(conn, ticket["id"], now, ACTOR, "dev_due_reminder", to_value=", ".join(people) or None,
                    reason=what, rules_hash=app.rules.digest)
    return [_breach_notice(app, ticket, email, shown_to(email), f"#dev {ticket['dev_engineer']}"
                           if ticket["dev_engineer"] else "", reminder=True) for email in people]


_HANDLERS = {
    plan_of.RESPOND: _respond,
    plan_of.WARN: _warn,
    plan_of.CLOSE: _close,
    plan_of.WAKE: _wake,
    plan_of.DUE: _due,
}
