"""Give tickets to agents: the rule worker's `assign`, `#assign`, and the unassigned sweep.

Shape: lock the ticket, lock the group's round-robin cursor row (then the
group's unassigned tickets behind it, skipping any another transaction
holds), decide (ticketd.domain.assignment.next_agent), write assignee +
event + outbox rows and the advanced cursor in one transaction, commit,
enqueue the mail by id.
The cursor row lock serialises assignments per group across every worker
and daemon, so 300 concurrent tickets over 3 agents end 100/100/100 (issue 5).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from outbound.outbox import queue_notices
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.domain.assignment import available, kept_place, next_agent, why_unavailable
from ticketd.domain.conversation import FETCH_CHARS, NOT_SENT, SHOWN_MESSAGES, Shown, shown_conversation
from ticketd.domain.notices import AUTO_GENERATED, Notice
from ticketd.domain.rules import Agent, RuleSet
from ticketd.domain.statuses import Status
from ticketd.repeating_failures import RepeatingFailures
from ticketd.store import tickets as store
from ticketd.store.absences import rules_now
from ticketd.store.assignment import (
    advance_cursor,
    last_assignment_event,
    lock_cursor,
    lock_unassigned_after,
    open_counts,
    open_tickets_of_non_agents,
    read_cursor,
    waiting_unassigned,
)
from ticketd.store.db import reading
from ticketd.store.read_models import attachment_rows, latest_messages, message_event_kinds, sender_name
from ticketd.store.write_queue import acknowledgement_waiting

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("ticketd.assignment")
# A template broken while the daemon runs fails every waiting ticket's assignment the same way each sweep.
_failures = RepeatingFailures(log)

ACTOR = "system:assignment"
# A rule worker's job assigns at most this many tickets of one group at once.
ASSIGN_BATCH = 16


def pick(conn: Connection, rules: RuleSet, group: str, now: datetime, exclude: tuple[str, ...] = ()) -> Agent | None:
    """Choose by the group's strategy and advance its cursor (inside the caller's transaction)."""
    spec = rules.groups.get(group)
    if spec is None:
        return None
    last = lock_cursor(conn, group, now)
    members = rules_now(conn, rules, now).members(group)   # agents away by their own word are skipped
    agent = next_agent(spec.assign, members, last, open_counts(conn, (a.email for a in members)), exclude)
    if agent is not None:
        advance_cursor(conn, group, agent.email, now)
    return agent


def why_not_now(conn: Connection, rules: RuleSet, email: str, now: datetime) -> str | None:
    """Why the agent can take no new ticket now (away by the file or their word, at max_open); None if they can."""
    agent = rules_now(conn, rules, now).agent(email)
    if agent is None:
        return f"{email} is no agent in rules.yaml"
    counts = open_counts(conn, (agent.email,))
    return None if available(agent, counts) else why_unavailable([agent], counts, ())


def why_nobody(conn: Connection, rules: RuleSet, group: str, now: datetime) -> str:
    """Why nobody of the group can take a ticket now, one clause per member (away, at max_open)."""
    members = rules_now(conn, rules, now).members(group)
    return why_unavailable(members, open_counts(conn, (a.email for a in members)), ())


def give(conn: Connection, app: App, ticket: dict, agent: Agent, now: datetime, actor: str, reason: str,
         *, template: str = "agent/ticket_assigned", context: dict | None = None,
         row_id: int | None = None) -> list[Notice]:
    """Write the assignee and its event; the notice tells the agent (Reply-To: their signed address).

    The notice carries the ticket's latest messages, internal notes
    included, and their files: the agent has no other way to read what
    the customer asked.
    """
    return give_row(conn, app, ticket, agent, now, actor, reason, template=template, context=context,
                    row_id=row_id)[1]


def give_row(conn: Connection, app: App, ticket: dict, agent: Agent, now: datetime, actor: str, reason: str,
             *, template: str = "agent/ticket_assigned", context: dict | None = None,
             row_id: int | None = None) -> tuple[dict | None, list[Notice]]:
    """`give`, with the ticket's row as the assignment left it, for the notice's mail (`queue_notices`)."""
    given = store.update_ticket_row(conn, ticket["id"], now, assignee=agent.email)
    store.add_event(conn, ticket["id"], now, actor, "assigned", from_value=ticket["assignee"],
                    to_value=agent.email, reason=reason, rules_hash=app.rules.digest, message_row_id=row_id)
    store.add_participant(conn, ticket["id"], agent.email, "agent", agent.name, now)
    people = store.participants_of(conn, ticket["id"])   # read once for both: every assignment does this
    shown = conversation_of(conn, ticket["id"], rules=app.rules, people=people)
    ctx = {"agent_name": agent.name, "reason": reason, "conversation": shown.messages,
           "public_recipients": public_recipients(conn, app, ticket["id"], people),
           "conversation_omitted": shown.omitted, **(context or {})}
    return given, [Notice(template=template, recipient=agent.email, ticket_id=ticket["id"], context=ctx,
                          auto_submitted=AUTO_GENERATED, agent_reply_to=agent.email, attach_from=shown.attach_from)]


def public_recipients(conn: Connection, app: App, ticket_id: int, people: list[dict] | None = None) -> list[dict]:
    """Who an agent's public reply reaches (PRODUCT.md: requester and followers), each {email, name};
    `people` the ticket's participants, when read already."""
    from ticketd.ticket_changes import customers_of   # it imports ticketd.timers, which imports this module
    if people is None:
        people = store.participants_of(conn, ticket_id)
    names = {p["email"]: p["name"] for p in people}
    return [{"email": email, "name": names.get(email) or sender_name(conn, ticket_id, email) or ""}
            for email in customers_of(conn, app, ticket_id, people)]


def conversation_of(conn: Connection, ticket_id: int, limit: int = SHOWN_MESSAGES, *, rules: RuleSet,
                    people: list[dict] | None = None) -> Shown:
    """The ticket's latest messages for an agent's notice: a few indexed queries, however long the ticket;
    `people` the ticket's participants, when read already."""
    latest, total = latest_messages(conn, ticket_id, limit, FETCH_CHARS)
    files = attachment_rows(conn, [row["id"] for row in latest]) if latest else []
    # A refused command mail is kept internal, an outsider's mail apart: say so rather than show it as a
    # note or the customer's (NOT_SENT); an agent by their name in rules.yaml now, not their mail client's
    # (one gone from the rules: the name it gave them when they joined the ticket).
    kept_by = message_event_kinds(conn, ticket_id, [row["id"] for row in latest if row["direction"] == "in"],
                                  list(NOT_SENT))
    if people is None:
        people = store.participants_of(conn, ticket_id)
    names = {p["email"]: p["name"] for p in people if p["role"] == "agent" and p["name"]}
    names.update({a.email.lower(): a.name for a in rules.agents if a.name})
    return shown_conversation(latest, total, files, limit, kept_by, names)


def group_lost(app: App, group: str | None) -> str | None:
    """Why no agent of the rules can be picked for a ticket in `group`, when that is the case: None if the
    rules have the group (then it is a matter of who is available)."""
    if not group:
        return "the ticket has no group (no route of rules.yaml gave it one)"
    if group not in app.rules.groups:
        return f"the ticket's group {group} is no longer in rules.yaml"
    return None


def wait(conn: Connection, app: App, ticket_id: int, group: str | None, now: datetime, actor: str = ACTOR) -> None:
    """Record, once, that the ticket waits for someone to become available."""
    if last_assignment_event(conn, ticket_id) != "assignment_waiting":
        reason = group_lost(app, group) or f"nobody available in group {group}"
        store.add_event(conn, ticket_id, now, actor, "assignment_waiting", to_value=group, reason=reason,
                        rules_hash=app.rules.digest)


def _assignable(ticket: dict | None) -> bool:
    return ticket is not None and ticket["assignee"] is None and ticket["status"] != Status.CLOSED.value


def assign(app: App, ticket_id: int) -> str | None:
    """The rule worker: give an unassigned ticket to its group's next agent; the agent's email, or None.

    Idempotent (dramatiq delivers at least once): an assigned or closed
    ticket is left alone. The group's unassigned tickets behind it are
    given out in the same transaction (`assign_batch`).
    """
    return assign_batch(app, ticket_id).get(ticket_id)


def assign_batch(app: App, ticket_id: int) -> dict[int, str]:
    """Assign the ticket and up to ASSIGN_BATCH - 1 of its group's unassigned tickets behind it.

    One transaction, one cursor lock and one count of open tickets for the
    lot, each ticket in id order by the group's strategy as if assigned one
    by one; their own jobs then find them assigned and only read (as a
    delivery job takes the due rows behind its own, bench/README.md
    changes 27-28). Like a processing batch it stops after any ticket when
    a mail waits for its 250, so that a batch holds SQLite's write lock no
    longer than one assignment would. Returns {ticket id: agent email}.
    """
    with reading(app.engine) as conn:   # a ticket an earlier batch took needs no write lock
        if not _assignable(store.get_ticket(conn, ticket_id)):
            return {}
    given: dict[int, str] = {}
    with app.engine.begin() as conn:
        ticket = store.lock_ticket(conn, ticket_id)
        if not _assignable(ticket):
            return {}
        now = utcnow()
        group = ticket["group_name"]
        spec = app.rules.groups.get(group) if group else None
        if spec is not None:
            # Own ticket, cursor, then the others without waiting for them:
            # while it waits for the cursor a batch holds one ticket, as a
            # single assignment does, and once it has the cursor it waits
            # for nothing, so it cannot close a cycle of waits (PostgreSQL).
            last = lock_cursor(conn, group, now)
            batch = [ticket, *lock_unassigned_after(conn, group, ticket_id, ASSIGN_BATCH - 1)]
            members = rules_now(conn, app.rules, now).members(group)
            counts = open_counts(conn, (a.email for a in members))
            reason = f"round robin in {group}" if spec.assign == "round_robin" else f"least open in {group}"
            # ticketd.timers builds on this module (pick, give); imported here, not at the top.
            from ticketd.timers import clock_for_late_assignment

            notices: list[Notice] = []
            # Each ticket's row as its assignment left it: its notice's mail needs no read of it (0.7
            # statements per mail, bench/drain.py --jobs), as processing hands its own (Decision.ticket_row).
            rows: list[dict] = []
            for each in batch:
                if given and acknowledgement_waiting(app.engine):
                    break   # a mail waits for its 250 (SQLite): the rest wait for their own jobs
                agent = next_agent(spec.assign, members, last, counts)
                if agent is None:   # nobody left: the rest wait for their own jobs or the sweep
                    break
                overdue = clock_for_late_assignment(conn, app, each, now)
                row, told = give_row(conn, app, each, agent, now, ACTOR, reason, context={"overdue": overdue})
                rows += [row] if row is not None else []
                notices += told
                given[each["id"]] = last = agent.email
                counts[agent.email] = counts.get(agent.email, 0) + 1
        if not given:
            wait(conn, app, ticket_id, group, now)
            return {}
        advance_cursor(conn, group, last, now)
        outbox_ids = queue_notices(conn, app, notices, now, ticket_rows=rows)
    for outbox_id in outbox_ids:
        app.enqueue("send_mail", (outbox_id,))
    for assigned_id, agent_email in given.items():
        log.info("ticket %s assigned to %s (group %s, rules %s)", assigned_id, agent_email, group,
                 app.rules.digest[:12])
    return given


def assign_in_tx(conn: Connection, app: App, ticket_id: int, target: str, now: datetime, actor: str, *,
                 row_id: int | None = None) -> list[Notice]:
    """`#assign <agent email or group>` inside the caller's transaction; ValueError if `target` is unknown.

    `row_id`: the message whose command it is, which the history events name.

    An agent is assigned as asked (an admin's explicit choice, even if away:
    `#assign` by mail refuses an away agent before this, ticketd.agent_mail); a group
    picks by its strategy, skipping the current assignee. An unassigned
    ticket waits in that group when nobody is available; an assigned one
    stays with its agent (ValueError saying why nobody else can take it).
    """
    # ticketd.timers builds on this module (pick, give); imported here, not at the top.
    from ticketd.timers import restart_unanswered_clock

    rules = app.rules
    target = target.strip()
    ticket = store.lock_ticket(conn, ticket_id)
    if ticket is None:
        raise ValueError(f"ticket {ticket_id} does not exist")
    if "@" in target:
        agent = rules.agent(target)
        if agent is None:
            known = ", ".join(a.email for a in rules.agents) or "none"
            raise ValueError(f"{target} is not an agent in rules.yaml (agents: {known})")
        if ticket["assignee"] == agent.email:
            return []
        if ticket["assignee"]:
            restart_unanswered_clock(conn, app, ticket, now)
        return give(conn, app, ticket, agent, now, actor, f"assigned by {actor}", row_id=row_id)
    if target not in rules.groups:
        known_groups = ", ".join(rules.groups) or "none"
        raise ValueError(f"{target!r} is neither an agent's address nor a group (groups: {known_groups})")
    exclude = (ticket["assignee"],) if ticket["assignee"] else ()
    if ticket["group_name"] != target:
        store.update_ticket(conn, ticket_id, now, group_name=target)
        store.add_event(conn, ticket_id, now, actor, "group", from_value=ticket["group_name"], to_value=target,
                        reason="#assign", rules_hash=rules.digest, message_row_id=row_id)
    agent = pick(conn, rules, target, now, exclude)
    if agent is None and ticket["assignee"]:
        # Unassigned, the ticket would wait in the group, and the next sweep
        # would give it straight back to the agent who asked to pass it on.
        members = rules_now(conn, rules, now).members(target)
        counts = open_counts(conn, (a.email for a in members))
        raise ValueError(f"nobody else in {target} can take it now ({why_unavailable(members, counts, exclude)}); "
                         f"it stays with {ticket['assignee']}. To give it to someone by name: #assign <their address>")
    if agent is None:
        wait(conn, app, ticket_id, target, now, actor)
        return []
    if ticket["assignee"]:
        restart_unanswered_clock(conn, app, ticket, now)
    return give(conn, app, ticket, agent, now, actor, f"#assign {target} by {actor}", row_id=row_id)



def sweep_unassigned(app: App, limit: int = 200, *, grace_seconds: float | None = None) -> int:
    """Assign waiting tickets whose group now has someone available; how many were assigned.

    Runs from the sweep and right after a rules reload (e.g. `away: false`).
    A cheap read first, so a quiet system takes no write lock. The periodic
    sweep leaves a ticket younger than `grace_seconds` to the assign_ticket
    job enqueued when it was created, as the outbox sweep does for mail;
    a reload passes 0, since then nobody else is about to assign.
    """
    if grace_seconds is None:
        grace_seconds = max(1.0, 2 * app.settings.sweep_seconds)
    now = utcnow()
    with reading(app.engine) as conn:
        rows = waiting_unassigned(conn, limit, now - timedelta(seconds=grace_seconds))
        # Someone back from an absence of their own (#back, or its end
        # passed) is available again here, as after a rules reload.
        rules = rules_now(conn, app.rules, now) if rows else app.rules
        counts = open_counts(conn, (a.email for a in rules.agents)) if rows else {}
    done = 0
    for ticket_id, group in rows:
        if group in rules.groups and any(available(a, counts) for a in rules.members(group)):
            try:
                done += len(assign_batch(app, ticket_id))
                _failures.worked()
            except Exception:
                _failures.failed("assigning ticket %s failed; the next sweep retries", ticket_id)
    return done


def keep_cursor_places(app: App, previous: RuleSet) -> int:
    """After a reload from `previous`: each group whose cursor names an agent who left it goes on after that
    agent's place (ticketd.domain.assignment.kept_place); how many cursors moved.

    Runs before the removed agents' tickets are given out, so those go on
    the rotation too. One short transaction per group that needs it; a
    second process reloading the same file finds nothing to move.
    """
    moved = 0
    for group in app.rules.groups:
        before, after = previous.members(group), app.rules.members(group)
        with reading(app.engine) as conn:   # most reloads move no cursor: no write lock for them
            if kept_place(before, after, read_cursor(conn, group)) is None:
                continue
        with app.engine.begin() as conn:
            now = utcnow()
            last = lock_cursor(conn, group, now)
            place = kept_place(before, after, last)
            if place is None:
                continue   # moved meanwhile
            advance_cursor(conn, group, place, now)
        moved += 1
        log.info("round robin in %s goes on after %s: %s left the group (rules %s)", group, place, last,
                 app.rules.digest[:12])
    return moved


def departed(former: str) -> str:
    """Why a ticket left an address rules.yaml no longer lists, as its `unassigned` event says."""
    return f"{former} is no longer an agent in rules.yaml"


def unassign(conn: Connection, app: App, ticket: dict, now: datetime, reason: str, actor: str = ACTOR) -> None:
    """Take the ticket from its assignee, with the `unassigned` event naming them and why (in the caller's tx)."""
    store.update_ticket(conn, ticket["id"], now, assignee=None)
    store.add_event(conn, ticket["id"], now, actor, "unassigned", from_value=ticket["assignee"], reason=reason,
                    rules_hash=app.rules.digest)
    ticket["assignee"] = None


def release_if_departed(conn: Connection, app: App, ticket: dict, now: datetime) -> bool:
    """Unassign the ticket if its assignee is no longer an agent; whether it did (in the caller's transaction).

    release_departed covers the tickets open when the rules change; a
    closed one keeps its former agent for its history, until a customer's
    mail brings it back to life and someone must read it.
    """
    if not ticket["assignee"] or app.rules.agent(ticket["assignee"]) is not None:
        return False
    unassign(conn, app, ticket, now, departed(ticket["assignee"]))
    return True


def release_departed(app: App, batch: int = 100) -> int:
    """Give open tickets of addresses that are no longer agents back to their groups; how many.

    An agent removed from rules.yaml (someone who left the team) kept their
    tickets: customer replies and timer notices still went to their address,
    and round robin never looks at an assigned ticket again. Each such ticket
    is unassigned (an event names the former agent) and given to its group's
    next available agent, or waits in the group like any unassigned ticket.
    Runs when the back office starts and after every rules reload; one
    ticket per transaction, so a large release never holds the write lock
    long and never holds one ticket while waiting for another.
    """
    released = 0
    while True:
        with reading(app.engine) as conn:
            rows = open_tickets_of_non_agents(conn, (a.email for a in app.rules.agents), batch)
        done = sum(_release(app, ticket_id) for ticket_id, _ in rows)
        released += done
        if len(rows) < batch or not done:
            return released


def _release(app: App, ticket_id: int) -> bool:
    """Unassign one ticket whose assignee is no agent, and give it to its group; False if it changed meanwhile."""
    rules = app.rules
    with app.engine.begin() as conn:
        ticket = store.lock_ticket(conn, ticket_id)
        if (ticket is None or ticket["status"] == Status.CLOSED.value or ticket["assignee"] is None
                or rules.agent(ticket["assignee"]) is not None):
            return False
        now = utcnow()
        former, group = ticket["assignee"], ticket["group_name"]
        unassign(conn, app, ticket, now, departed(former))
        agent = pick(conn, rules, group, now) if group in rules.groups else None
        if agent is None:
            wait(conn, app, ticket_id, group, now)
            outbox_ids: list[int] = []
        else:
            # As the sweep gives a waiting ticket (assign_batch): a customer still
            # waiting with no clock running gets one, and the agent is told it is late.
            # ticketd.timers builds on this module (pick, give); imported here, not at the top.
            from ticketd.timers import clock_for_late_assignment

            overdue = clock_for_late_assignment(conn, app, ticket, now)
            notices = give(conn, app, ticket, agent, now, ACTOR, f"{former} left the agents; next in {group}",
                           context={"overdue": overdue})
            outbox_ids = queue_notices(conn, app, notices, now)
    for outbox_id in outbox_ids:
        app.enqueue("send_mail", (outbox_id,))
    log.warning("ticket %s: %s is no longer an agent in rules.yaml; %s", ticket_id, former,
                f"given to {agent.email}" if agent else f"waits for an agent of {group or 'no group'}")
    return True
