"""Per-status timers: planning (pure), firing once from the database, and through the real daemon."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import make_due as _make_due
from tests.sink import Sink, customer_mail, wait_until
from ticketd.app import build_app
from ticketd.assignment import assign
from ticketd.clock import utcnow
from ticketd.domain.rules import BusinessHours, TimerSpec
from ticketd.domain.timers import add_business_seconds, describe, plan
from ticketd.rules_file import RulesError, load_rules_text
from ticketd.settings import load_settings
from ticketd.store import tickets as store
from ticketd.store.tables import events, outbox, timers
from ticketd.timers import armed, fire_due_timers, on_status_change

RULES = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]}
  - {email: a2@example.com, name: A2, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - name: notify only
    if: {subject: '(?i)notify'}
    then: {group: support}
  - then: {group: support}
timers:
  new:              {respond_within: %(respond)s, on_breach: reassign}
  open:             {respond_within: %(respond)s, on_breach: notify}
  waiting_customer: {warn_after: %(warn)s, close_after: %(close)s}
  in_development:   {remind_before: 1s}
"""


def rules(respond="1h", warn="1h", close="2h") -> str:
    return RULES % dict(respond=respond, warn=warn, close=close)


# ---------------------------------------------------------------- pure


def test_plan_per_status():
    now = datetime(2026, 3, 2, 10, 0)
    spec = TimerSpec(respond_within=3600, warn_after=60, close_after=120, remind_before=600)
    assert [(p.kind, p.due_at) for p in plan("new", spec, now)] == [("respond", now + timedelta(hours=1))]
    assert [p.kind for p in plan("waiting_customer", spec, now)] == ["respond", "warn", "close"]
    assert [p.kind for p in plan("waiting_customer", None, now)] == ["warn", "close"]   # PRODUCT.md 3d / 4d
    assert plan("waiting_customer", None, now)[1].due_at == now + timedelta(days=4)
    wake = now + timedelta(days=2)
    assert [(p.kind, p.due_at) for p in plan("postponed", None, now, postponed_until=wake)] == [("wake", wake)]
    due = now + timedelta(days=5)
    assert [(p.kind, p.due_at) for p in plan("in_development", spec, now, dev_due=due)] == [
        ("respond", now + timedelta(hours=1)), ("due", due - timedelta(minutes=10)), ("due", due)]
    # A due date closer than remind_before is reminded of on the day only.
    soon = now + timedelta(minutes=5)
    assert [(p.kind, p.due_at) for p in plan("in_development", spec, now, dev_due=soon)] == [
        ("respond", now + timedelta(hours=1)), ("due", soon)]
    assert plan("closed", spec, now) == []


def test_a_partial_waiting_customer_entry_keeps_the_other_defaults():
    """PRODUCT.md: warn after 3 days and close after 4 unless rules.yaml sets that value itself."""
    now = datetime(2026, 3, 2, 10, 0)
    day = 86400
    due = {p.kind: p.due_at - now for p in plan("waiting_customer", TimerSpec(respond_within=2 * day), now)}
    assert due == {"respond": timedelta(days=2), "warn": timedelta(days=3), "close": timedelta(days=4)}
    due = {p.kind: p.due_at - now for p in plan("waiting_customer", TimerSpec(warn_after=day), now)}
    assert due == {"warn": timedelta(days=1), "close": timedelta(days=4)}
    due = {p.kind: p.due_at - now for p in plan("waiting_customer", TimerSpec(close_after=5 * day), now)}
    assert due == {"warn": timedelta(days=3), "close": timedelta(days=5)}
    assert describe("close", "waiting_customer", TimerSpec(warn_after=day)) == "close_after 4d in waiting_customer"
    assert describe("warn", "waiting_customer", None) == "warn_after 3d in waiting_customer"


@pytest.mark.parametrize("entry, expected", [
    ("{warn_after: 5d}", "timers.waiting_customer.warn_after: close_after (4d by default) must be later than "
                         "warn_after (5d)"),
    ("{close_after: 2d}", "timers.waiting_customer.close_after: close_after (2d) must be later than "
                          "warn_after (3d by default)"),
])
def test_a_default_that_would_close_before_the_warning_is_refused(entry, expected):
    text = rules().replace("{warn_after: 1h, close_after: 2h}", entry)
    with pytest.raises(RulesError) as refused:
        load_rules_text(text)
    assert any(expected in line for line in refused.value.errors), refused.value.errors


def test_business_hours_skip_nights_weekends_and_holidays():
    hours = BusinessHours(timezone="Europe/Berlin", week={d: ((9 * 3600, 17 * 3600),) for d in range(5)},
                          holidays=frozenset({date(2026, 3, 9)}))
    friday_4pm_utc = datetime(2026, 3, 6, 15, 0)        # 16:00 in Berlin (UTC+1)
    # 1h left on Friday, Monday the 9th is a holiday, so 3h more lands Tuesday 12:00 Berlin = 11:00 UTC
    assert add_business_seconds(friday_4pm_utc, 4 * 3600, hours) == datetime(2026, 3, 10, 11, 0)
    saturday = datetime(2026, 3, 7, 12, 0)
    assert add_business_seconds(saturday, 60, hours) == datetime(2026, 3, 10, 8, 1)


@pytest.mark.parametrize("start, due", [
    (datetime(2027, 10, 31, 0, 30), datetime(2027, 10, 31, 1, 30)),   # clocks go back at 01:00 UTC
    (datetime(2027, 3, 28, 0, 30), datetime(2027, 3, 28, 1, 30)),     # clocks go forward at 01:00 UTC
])
def test_working_time_is_real_time_across_a_clock_change(start, due):
    """A 24/7 desk's 1h was due 2 real hours later in October: a span holding the change counted wall time."""
    always = BusinessHours(timezone="Europe/Berlin", week={d: ((0, 24 * 3600),) for d in range(7)})
    assert add_business_seconds(start, 3600, always) == due
    assert add_business_seconds(datetime(2027, 10, 30, 12, 0), 86400, always) == datetime(2027, 10, 31, 12, 0)
    assert add_business_seconds(datetime(2027, 3, 27, 12, 0), 86400, always) == datetime(2027, 3, 28, 12, 0)


def test_a_night_shift_over_the_clock_change_is_as_long_as_the_clocks_say():
    """01:00-04:00 in Berlin on the night the clocks go back is four real hours; the spring night two."""
    nights = BusinessHours(timezone="Europe/Berlin", week={d: ((3600, 4 * 3600),) for d in range(7)})
    autumn = datetime(2027, 10, 30, 23, 0)   # Sunday 01:00 CEST
    assert add_business_seconds(autumn, 4 * 3600 - 1, nights) == datetime(2027, 10, 31, 2, 59, 59)
    spring = datetime(2027, 3, 28, 0, 0)     # Sunday 01:00 CET; 02:00-03:00 does not exist
    assert add_business_seconds(spring, 2 * 3600 - 1, nights) == datetime(2027, 3, 28, 1, 59, 59)


# ---------------------------------------------------------------- the shell, on both databases


def _ticket(app, status="new", assignee=None, **fields) -> int:
    """A ticket whose customer's mail waits for an answer (a respond clock runs only then, docs/rules.md)."""
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject="Printer on fire", status=status, requester="cust@example.org",
                                        group_name="support", assignee=assignee, created_at=now, updated_at=now,
                                        **fields)
        store.add_message(conn, ticket_id=ticket_id, direction="in", from_addr="cust@example.org",
                          text="It burns.", full_text="It burns.", author_role="customer", created_at=now)
        return ticket_id


def _enter(app, ticket_id, status, ago: float, **fields):
    """The ticket entered `status` `ago` seconds back, so its timers are due now."""
    with app.engine.begin() as conn:
        if fields or status:
            store.update_ticket(conn, ticket_id, utcnow(), status=status, **fields)
        on_status_change(conn, app, ticket_id, status, utcnow() - timedelta(seconds=ago))


def _kinds(app, ticket_id) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(events.c.kind).where(events.c.ticket_id == ticket_id)
                                 .order_by(events.c.id)).scalars())


def _mails(app) -> list[tuple[str, str]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(outbox.c.template, outbox.c.recipient).order_by(outbox.c.id))]


def test_respond_breach_reassigns_and_tells_both(make_app, db_url):
    app = make_app(db_url, rules=rules(respond="10s"))
    ticket_id = _ticket(app)
    assign(app, ticket_id)                       # a1
    _enter(app, ticket_id, "new", ago=11)
    assert fire_due_timers(app) == 1
    assert fire_due_timers(app) == 0             # once
    with app.engine.connect() as conn:
        ticket = store.get_ticket(conn, ticket_id)
        breach = conn.execute(select(events).where(events.c.kind == "timer_breached")).mappings().one()
        fresh = armed(conn, ticket_id)
    assert ticket["assignee"] == "a2@example.com"
    assert breach["reason"] == "respond_within 10s in new" and breach["rules_hash"] == app.rules.digest
    assert _mails(app)[-2:] == [("agent/timer_breached", "a2@example.com"), ("agent/timer_breached", "a1@example.com")]
    assert [t["kind"] for t in fresh] == ["respond"]   # the new assignee's own clock


def test_respond_breach_notify_and_answered_in_time(make_app, db_url):
    app = make_app(db_url, rules=rules(respond="10s"))
    late = _ticket(app, status="open", assignee="a1@example.com")
    _enter(app, late, "open", ago=11)
    answered = _ticket(app, status="open", assignee="a2@example.com")
    _enter(app, answered, "open", ago=11)
    with app.engine.begin() as conn:
        store.add_message(conn, ticket_id=answered, direction="out", text="done", full_text="done",
                          author_role="agent", created_at=utcnow())
    assert fire_due_timers(app) == 2
    assert "timer_breached" in _kinds(app, late) and "timer_breached" not in _kinds(app, answered)
    assert _mails(app) == [("agent/timer_breached", "a1@example.com")]
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, late)["assignee"] == "a1@example.com"   # notify: no reassignment


def test_waiting_customer_warns_then_closes_and_reply_stops_the_clock(make_app, db_url):
    app = make_app(db_url, rules=rules(warn="10s", close="20s"))
    ticket_id = _ticket(app, assignee="a1@example.com")
    _enter(app, ticket_id, "waiting_customer", ago=15)
    assert fire_due_timers(app) == 1
    assert _mails(app) == [("requester/waiting_reminder", "cust@example.org")]
    with app.engine.connect() as conn:
        reminder = email.message_from_bytes(bytes(conn.execute(select(outbox.c.raw)).scalar_one()),
                                            policy=email.policy.default).get_body(("plain",)).get_content()
        close_at = armed(conn, ticket_id)[0]["due_at"]
    # As people read a time: to the minute, with its zone, no ISO "T" or seconds.
    assert f"it will be closed on {close_at:%Y-%m-%d %H:%M} UTC." in reminder and "to keep it open" in reminder
    _enter(app, ticket_id, "waiting_customer", ago=25)   # a fresh wait, long past both
    assert fire_due_timers(app) == 1                     # the warning; it moves the close to give its grace
    with app.engine.connect() as conn:
        [close] = armed(conn, ticket_id)
    assert close["kind"] == "close" and close["due_at"] > utcnow() + timedelta(seconds=5)
    _make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    with app.engine.connect() as conn:
        ticket = store.get_ticket(conn, ticket_id)
    assert ticket["status"] == "closed" and ticket["closed_at"] is not None
    assert "auto_closed" in _kinds(app, ticket_id)
    assert _mails(app)[-1] == ("requester/ticket_closed", "cust@example.org")

    other = _ticket(app, assignee="a1@example.com")
    _enter(app, other, "waiting_customer", ago=25)
    _enter(app, other, "open", ago=0)                    # the customer replied
    assert fire_due_timers(app) == 0
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, other)["status"] == "open"
        states = set(conn.execute(select(timers.c.kind, timers.c.state).where(timers.c.ticket_id == other)))
    assert ("warn", "cancelled") in states and ("close", "cancelled") in states


def test_waiting_customer_with_only_respond_within_still_warns_and_closes(make_app, db_url):
    """A waiting_customer entry without warn_after / close_after keeps PRODUCT.md's 3d / 4d."""
    text = rules().replace("{warn_after: 1h, close_after: 2h}", "{respond_within: 1h, on_breach: notify}")
    app = make_app(db_url, rules=text)
    ticket_id = _ticket(app, assignee="a1@example.com")
    _enter(app, ticket_id, "waiting_customer", ago=4 * 86400 + 1)
    with app.engine.connect() as conn:
        assert [t["kind"] for t in armed(conn, ticket_id)] == ["respond", "warn", "close"]
    assert fire_due_timers(app) == 2                     # respond and the warning, which moves the close
    _make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, ticket_id)["status"] == "closed"
    assert [k for k in _kinds(app, ticket_id) if k in ("waiting_reminder", "auto_closed")] == [
        "waiting_reminder", "auto_closed"]
    assert _mails(app)[-2:] == [("requester/waiting_reminder", "cust@example.org"),
                                ("requester/ticket_closed", "cust@example.org")]


def test_a_proposed_solution_nobody_answers_is_reminded_then_closed_when_rules_say_so(make_app, db_url):
    """Without an entry a proposal waits for ever; with warn_after / close_after it warns, then closes."""
    assert [p.kind for p in plan("solution_proposed", None, utcnow())] == []
    text = rules().replace("  in_development:", "  solution_proposed: {warn_after: 1h, close_after: 2h}\n"
                                                "  in_development:")
    app = make_app(db_url, rules=text)
    ticket_id = _ticket(app, assignee="a1@example.com")
    _enter(app, ticket_id, "solution_proposed", ago=2 * 3600 + 1)
    with app.engine.connect() as conn:
        assert [t["kind"] for t in armed(conn, ticket_id)] == ["warn", "close"]
    assert fire_due_timers(app) == 1                     # the warning, which moves the close
    _make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    with app.engine.connect() as conn:
        ticket = store.get_ticket(conn, ticket_id)
        raws = {r.template: bytes(r.raw) for r in conn.execute(select(outbox.c.template, outbox.c.raw))}
    assert ticket["status"] == "closed"
    assert [k for k in _kinds(app, ticket_id) if k in ("waiting_reminder", "auto_closed")] == [
        "waiting_reminder", "auto_closed"]
    assert b"we proposed a solution on ticket" in raws["requester/waiting_reminder"]
    assert b"to keep it open" not in raws["requester/waiting_reminder"]   # any reply but "accept" rejects it
    assert b"no answer to the solution we proposed" in raws["requester/ticket_closed"].replace(b"=\r\n", b"")


def test_only_a_public_agent_reply_answers_the_respond_clock(make_app, db_url):
    """PRODUCT.md respond-within: a #note, a commands-only mail or an out-of-office is no answer to the customer."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1h"))
    desk = next(desk_gen)
    try:
        not_answers = {
            "note": ("#note checking with the vendor\n", {}),
            "commands only": ("#priority high\n", {}),
            "out of office": ("I am out of the office until Monday.\n", {"Auto_Submitted": "auto-replied"}),
        }
        tickets = {}
        for what, (body, headers) in not_answers.items():
            desk.send(build_mail("cust@example.org", f"Printer on fire ({what}).\n", subject=f"Fire {what}"))
            tid = desk.ticket()["id"]
            agent = desk.assign(tid)
            desk.send(build_mail(agent, body, to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Fire",
                                 **headers))
            assert desk.ticket(tid)["status"] == "new"
            tickets[what] = (tid, agent)
            _make_due(desk.app, tid)
        assert fire_due_timers(desk.app) == len(not_answers)
        for what, (tid, agent) in tickets.items():
            assert len(desk.events(tid, "timer_breached")) == 1, what
            assert desk.ticket(tid)["assignee"] not in (None, agent), what   # new: on_breach reassign
    finally:
        desk_gen.close()


def _answered_by_an_agent(desk) -> tuple[int, str]:
    """A customer's new ticket, assigned, and its agent's public reply; the ticket and the agent."""
    from tests.desk import build_mail

    desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    agent = desk.assign(tid)
    desk.send(build_mail(agent, "Have you tried water?\n", to=desk.agent_address(tid, agent),
                         subject=f"Re: [#{tid}] Printer"))
    return tid, agent


def test_asking_the_customer_again_restarts_the_wait(make_app, db_url):
    """PRODUCT.md waiting_customer: warn, then close, after the customer's silence since our last question."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, db_url, rules=rules(warn="3d", close="4d"))
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        agent = desk.assign(tid)
        desk.send(build_mail(agent, "#status waiting_customer\nWhich model is it?\n",
                             to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer"))
        with desk.app.engine.connect() as conn:
            first = {t["kind"]: t for t in armed(conn, tid)}
        assert set(first) == {"warn", "close"}
        desk.send(build_mail(agent, "And where does it stand?\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        with desk.app.engine.connect() as conn:
            again = {t["kind"]: t for t in armed(conn, tid)}
        assert desk.ticket(tid)["status"] == "waiting_customer"
        assert set(again) == {"warn", "close"}
        assert all(again[k]["id"] != first[k]["id"] and again[k]["due_at"] >= first[k]["due_at"] for k in again)
        # an internal note asks the customer nothing: the wait stands
        desk.send(build_mail(agent, "#note\nThey never answer.\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        with desk.app.engine.connect() as conn:
            assert {t["kind"]: t["id"] for t in armed(conn, tid)} == {k: t["id"] for k, t in again.items()}
    finally:
        desk_gen.close()


def test_a_customer_follow_up_after_an_agent_reply_gets_its_own_respond_clock(make_app, db_url):
    """PRODUCT.md respond-within: the agent's earlier reply does not answer the customer's next question."""
    from tests.desk import build_mail, open_desk

    text = rules(respond="1h").replace("on_breach: notify", "on_breach: reassign")
    desk_gen = open_desk(make_app, db_url, rules=text)
    desk = next(desk_gen)
    try:
        tid, agent = _answered_by_an_agent(desk)
        assert desk.ticket(tid)["status"] == "open"
        with desk.app.engine.connect() as conn:
            assert armed(conn, tid) == []              # the reply answered the customer: no clock runs
            answered = conn.execute(select(timers).where(timers.c.ticket_id == tid)).mappings().all()
        assert answered and {t["state"] for t in answered} == {"cancelled"}
        desk.send(build_mail("cust@example.org", "Water made it worse. What now?\n",
                             subject=f"Re: [#{tid}] Printer", in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        with desk.app.engine.connect() as conn:
            [clock] = armed(conn, tid)
        assert clock["kind"] == "respond" and clock["status"] == "open"
        assert clock["created_at"] > max(t["created_at"] for t in answered)
        _make_due(desk.app, tid)
        assert fire_due_timers(desk.app) == 1
        assert len(desk.events(tid, "timer_breached")) == 1
        assert desk.ticket(tid)["assignee"] not in (None, agent)
    finally:
        desk_gen.close()


def test_a_status_command_alone_starts_a_respond_clock_only_while_the_customer_waits(make_app, db_url):
    """docs/rules.md respond_within: a commands-only `#status` answers nobody and asks nobody; the clock
    runs only while the customer's latest mail waits for an answer, whatever moved the status."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1h"))
    desk = next(desk_gen)
    try:
        tid, agent = _answered_by_an_agent(desk)
        to, subject = desk.agent_address(tid, agent), f"Re: [#{tid}] Printer"
        desk.send(build_mail(agent, "#status waiting_customer\n", to=to, subject=subject))
        desk.send(build_mail(agent, "#status open\n", to=to, subject=subject))
        assert desk.ticket(tid)["status"] == "open"
        with desk.app.engine.connect() as conn:
            assert armed(conn, tid) == []            # the customer was answered: nothing to be overdue for
        # The customer writes: the reply moves the ticket back to open, and their mail waits.
        desk.send(build_mail(agent, "#status waiting_customer\nWhich model is it?\n", to=to, subject=subject))
        desk.send(build_mail("cust@example.org", "A Laser 3000.\n", subject=subject,
                             in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        assert desk.ticket(tid)["status"] == "open"
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == ["respond"]
        # A commands-only status change while that mail waits keeps a clock running.
        desk.send(build_mail("cust@example.org", "Printer on fire again.\n", subject="Another fire"))
        waiting = desk.ticket()["id"]
        other = desk.assign(waiting)
        desk.send(build_mail(other, "#status open\n", to=desk.agent_address(waiting, other),
                             subject=f"Re: [#{waiting}] Another fire"))
        assert desk.ticket(waiting)["status"] == "open"
        with desk.app.engine.connect() as conn:
            assert [(t["kind"], t["status"]) for t in armed(conn, waiting)] == [("respond", "open")]
    finally:
        desk_gen.close()


def test_a_ticket_handed_on_when_its_agent_leaves_the_rules_keeps_a_clock_for_a_waiting_customer(
        make_app, db_url, tmp_path):
    """docs/rules.md: given on at once, as given later by the sweep, with a whole respond_within if the
    customer waits and none if they are answered."""
    from tests.desk import build_mail, open_desk
    from ticketd.rules_watch import reload

    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1h"))   # open: on_breach notify
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n", subject="Printer"))
        waiting = desk.ticket()["id"]
        assert desk.assign(waiting) == "a1@example.com"
        desk.send(build_mail("a1@example.com", "#status open\n", to=desk.agent_address(waiting, "a1@example.com"),
                             subject=f"Re: [#{waiting}] Printer"))
        _make_due(desk.app, waiting)
        assert fire_due_timers(desk.app) == 1        # breached, notify: a1 keeps it, no clock runs any more
        desk.send(build_mail("other@example.org", "The scanner is on fire.\n", subject="Scanner"))
        answered = desk.ticket()["id"]
        assert desk.assign(answered) == "a2@example.com"
        to = desk.agent_address(answered, "a2@example.com")
        desk.send(build_mail("a2@example.com", "Unplug it.\n", to=to, subject=f"Re: [#{answered}] Scanner"))
        desk.send(build_mail("a2@example.com", "#assign a1@example.com\n", to=to, subject=f"Re: [#{answered}] Scanner"))
        with desk.app.engine.connect() as conn:
            assert armed(conn, waiting) == [] and armed(conn, answered) == []
            before = conn.execute(select(outbox.c.id).order_by(outbox.c.id.desc())).scalars().first()

        (tmp_path / "rules.yaml").write_text(rules(respond="1h").replace(
            "  - {email: a1@example.com, name: A1, groups: [support]}\n", ""))
        assert reload(desk.app) is True
        assert desk.ticket(waiting)["assignee"] == desk.ticket(answered)["assignee"] == "a2@example.com"
        with desk.app.engine.connect() as conn:
            [clock] = armed(conn, waiting)
            assert armed(conn, answered) == []       # the customer was answered: nothing to be overdue for
            notices = {r.ticket_id: bytes(r.raw).replace(b"=\r\n", b"") for r in conn.execute(
                select(outbox.c.ticket_id, outbox.c.raw).where(outbox.c.id > before,
                                                               outbox.c.template == "agent/ticket_assigned"))}
        assert (clock["kind"], clock["status"]) == ("respond", "open")
        assert clock["due_at"] > utcnow() + timedelta(minutes=59)
        assert b"already overdue" in notices[waiting] and b"already overdue" not in notices[answered]
    finally:
        desk_gen.close()


def test_postponed_wakes_and_development_reminds(make_app, db_url):
    app = make_app(db_url, rules=rules())
    sleeping = _ticket(app, assignee="a1@example.com")
    _enter(app, sleeping, "postponed", ago=0, postponed_until=utcnow() - timedelta(seconds=1))
    dev = _ticket(app, assignee="a2@example.com")
    _enter(app, dev, "in_development", ago=0, dev_due=utcnow(), dev_engineer="a1@example.com",
           dev_tracker_key="BUG-7")
    # `#dev` may name someone outside rules.yaml: the reminder (agent-only detail, a reply
    # address that answers the customer) goes to the assignee alone.
    outside = _ticket(app, assignee="a2@example.com")
    _enter(app, outside, "in_development", ago=0, dev_due=utcnow(), dev_engineer="eng@example.com",
           dev_tracker_key="BUG-8")
    assert fire_due_timers(app) == 3
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, sleeping)["status"] == "open"
        assert store.get_ticket(conn, dev)["status"] == "in_development"
    assert sorted(_mails(app)) == [("agent/timer_breached", "a1@example.com"),
                                   ("agent/timer_breached", "a1@example.com"),
                                   ("agent/timer_breached", "a2@example.com"),
                                   ("agent/timer_breached", "a2@example.com")]
    assert "dev_due_reminder" in _kinds(app, dev) and "dev_due_reminder" in _kinds(app, outside)


def test_many_sweepers_fire_each_timer_once(make_app, db_url):
    app = make_app(db_url, rules=rules(respond="10s"))
    ids = [_ticket(app, status="open", assignee="a1@example.com") for _ in range(20)]
    for ticket_id in ids:
        _enter(app, ticket_id, "open", ago=11)
    fired = []
    threads = [threading.Thread(target=lambda: fired.append(fire_due_timers(app))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(fired) == 20
    assert len(_mails(app)) == 20


# ---------------------------------------------------------------- through the real daemon


def _daemon_setup(tmp_path, db_url, text):
    sink = Sink(free_port()).start()
    config = write_config(tmp_path, db_url, rules=text, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    return sink, config, app


def _send(app, msg):
    import smtplib

    with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
        client.send_message(msg)


def _to(sink, template_subject: str, recipient: str) -> list:
    return [m for m in sink.messages if recipient in m.rcpt_tos and m.message["Subject"].startswith(template_subject)]


def _saying(sink, subject: str, phrase: str, recipient: str) -> list:
    """Customer mail keeps the ticket's subject (templates/README.md): tell them apart by the body."""
    return [m for m in _to(sink, subject, recipient)
            if m.message["Subject"] == subject and phrase in m.message.get_body(("plain",)).get_content()]


def test_every_timer_through_the_daemon(tmp_path, sqlite_url):
    sink, config, app = _daemon_setup(tmp_path, sqlite_url, rules(respond="2s", warn="1s", close="2s"))
    daemon = DaemonProcess(config).start()
    try:
        _send(app, customer_mail(subject="Printer on fire"))
        first = wait_until(lambda: _to(sink, "[#1] Assigned to you", "a1@example.com"))
        assert first
        # respond_within 2s in new, reassign: a2 gets it, both are told
        wait_until(lambda: _to(sink, "[#1] Overdue", "a2@example.com") and _to(sink, "[#1] Overdue", "a1@example.com"),
                   timeout=15)
        with app.engine.connect() as conn:
            assert store.get_ticket(conn, 1)["assignee"] == "a2@example.com"

        # waiting_customer: warned after 1s, closed after 2s
        with app.engine.begin() as conn:
            store.update_ticket(conn, 1, utcnow(), status="waiting_customer")
            on_status_change(conn, app, 1, "waiting_customer", utcnow())
        wait_until(lambda: _saying(sink, "[#1] Printer on fire", "still waiting for your answer", "cust@example.org"),
                   timeout=15)
        wait_until(lambda: _saying(sink, "[#1] Printer on fire", "is closed", "cust@example.org"), timeout=15)
        with app.engine.connect() as conn:
            assert store.get_ticket(conn, 1)["status"] == "closed"

        # postponed wakes up; in_development reminds the assignee and the engineer (an agent)
        _send(app, customer_mail(subject="Later please"))
        wait_until(lambda: _to(sink, "[#2] Assigned to you", "a1@example.com") or
                   _to(sink, "[#2] Assigned to you", "a2@example.com"))
        with app.engine.begin() as conn:
            now = utcnow()
            store.update_ticket(conn, 2, now, status="postponed", postponed_until=now + timedelta(seconds=1))
            on_status_change(conn, app, 2, "postponed", now)
        wait_until(lambda: _status(app, 2) == "open", timeout=15)
        with app.engine.begin() as conn:
            now = utcnow()
            store.update_ticket(conn, 2, now, status="in_development", dev_due=now + timedelta(seconds=2),
                                dev_engineer="a1@example.com", dev_tracker_key="BUG-7")
            on_status_change(conn, app, 2, "in_development", now)
        wait_until(lambda: _to(sink, "[#2] Reminder", "a1@example.com"), timeout=15)
    finally:
        daemon.stop()
        sink.stop()


def _status(app, ticket_id):
    with app.engine.connect() as conn:
        return store.get_ticket(conn, ticket_id)["status"]


def test_timer_survives_a_daemon_kill_and_fires_once(tmp_path, postgres_url):
    sink, config, app = _daemon_setup(tmp_path, postgres_url, rules(respond="3s"))
    daemon = DaemonProcess(config).start()
    try:
        _send(app, customer_mail(subject="please notify me"))
        wait_until(lambda: _to(sink, "[#1] Assigned to you", "a1@example.com"))
        with app.engine.begin() as conn:   # an agent opened it: respond_within 3s, on_breach notify
            store.update_ticket(conn, 1, utcnow(), status="open")
            on_status_change(conn, app, 1, "open", utcnow())
        daemon.kill()                      # SIGKILL: no clean stop
        time.sleep(4)                      # the timer falls due while nothing runs
        with app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, 1)] == ["respond"]
        daemon = DaemonProcess(config).start()
        wait_until(lambda: _to(sink, "[#1] Overdue", "a1@example.com"), timeout=15)
        sink.settle(quiet=2.5)             # nothing more: the breach fired once
        assert len(_to(sink, "[#1] Overdue", "a1@example.com")) == 1
        assert len([k for k in _kinds(app, 1) if k == "timer_breached"]) == 1
    finally:
        daemon.stop()
        sink.stop()
        app.engine.dispose()


def test_a_new_customer_question_on_an_open_ticket_restarts_the_respond_clock(make_app, sqlite_url):
    """The clock runs from the oldest unanswered customer mail, not from the status change."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, sqlite_url, rules=rules(respond="1h"))
    desk = next(desk_gen)
    try:
        tid, agent = _answered_by_an_agent(desk)
        with desk.app.engine.begin() as conn:   # the clock armed with `open` has run out, answered
            conn.execute(timers.update().values(state="cancelled"))
        desk.send(build_mail("cust@example.org", "Water made it worse.\n", subject=f"Re: [#{tid}] Printer",
                             in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        with desk.app.engine.connect() as conn:
            [clock] = armed(conn, tid)
        assert clock["kind"] == "respond" and clock["status"] == "open"
        assert abs((clock["due_at"] - utcnow()).total_seconds() - 3600) < 60
        desk.send(build_mail("cust@example.org", "Hello?\n", subject=f"Re: [#{tid}] Printer",
                             in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        with desk.app.engine.connect() as conn:
            assert [t["due_at"] for t in armed(conn, tid)] == [clock["due_at"]]   # the first deadline stands
    finally:
        desk_gen.close()


@contextlib.contextmanager
def _customer_ticket(make_app, db_url, text: str):
    """A desk on `text`'s rules where a customer has just opened a ticket; (desk, ticket id)."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, db_url, rules=text)
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        yield desk, desk.ticket()["id"]
    finally:
        desk_gen.close()


def test_a_ticket_passed_on_gives_its_new_agent_a_fresh_respond_clock(make_app, db_url):
    """The clock that reassigns forgotten tickets restarts for an agent given one by #assign, as on a breach."""
    from tests.desk import build_mail

    with _customer_ticket(make_app, db_url, rules(respond="1h")) as (desk, tid):
        agent = desk.assign(tid)
        other = next(a for a in ("a1@example.com", "a2@example.com") if a != agent)
        with desk.app.engine.begin() as conn:   # 50 minutes of the customer's hour have gone
            conn.execute(timers.update().where(timers.c.ticket_id == tid, timers.c.state == "armed")
                         .values(due_at=utcnow() + timedelta(minutes=10)))
        desk.send(build_mail(agent, f"#assign {other}\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        assert desk.ticket(tid)["assignee"] == other
        with desk.app.engine.connect() as conn:
            [clock] = armed(conn, tid)
        assert clock["kind"] == "respond" and clock["due_at"] > utcnow() + timedelta(minutes=55)
        # A command that gives the ticket to nobody new leaves that clock alone.
        desk.send(build_mail(other, "#priority high\n", to=desk.agent_address(tid, other),
                             subject=f"Re: [#{tid}] Printer"))
        with desk.app.engine.connect() as conn:
            assert [t["id"] for t in armed(conn, tid)] == [clock["id"]]


def test_the_first_assignment_keeps_the_clock_the_customer_started(make_app, db_url):
    """The respond clock counts from the customer's mail, not from when round robin found an agent."""
    with _customer_ticket(make_app, db_url, rules(respond="1h")) as (desk, tid):
        with desk.app.engine.connect() as conn:
            [before] = armed(conn, tid)
        desk.assign(tid)
        with desk.app.engine.connect() as conn:
            assert [(t["id"], t["due_at"]) for t in armed(conn, tid)] == [(before["id"], before["due_at"])]


def test_a_ticket_with_no_address_is_warned_and_closed_without_mail(make_app, db_url):
    """A requester "" (From named no address): the timers act, no mail is queued, the history says why."""
    app = make_app(db_url, rules=rules(warn="10s", close="20s"))
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject="Printer on fire", status="new", requester="",
                                        requester_name="John Smith", group_name="support", assignee="a1@example.com",
                                        created_at=now, updated_at=now)
    _enter(app, ticket_id, "waiting_customer", ago=15)
    assert fire_due_timers(app) == 1
    with app.engine.connect() as conn:
        [close] = armed(conn, ticket_id)
        [warned] = conn.execute(select(events).where(events.c.kind == "waiting_reminder")).mappings()
    assert close["kind"] == "close" and close["due_at"] > utcnow() + timedelta(seconds=5)   # the grace re-armed
    assert warned["to_value"] is None and "no mail sent: the ticket has no address to write to" in warned["reason"]
    _make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, ticket_id)["status"] == "closed"
        [closed] = conn.execute(select(events).where(events.c.kind == "auto_closed")).mappings()
    assert "no mail sent: the ticket has no address to write to" in closed["reason"]
    assert _mails(app) == []   # no row to fail at delivery, no delivery_failed notice to the assignee
