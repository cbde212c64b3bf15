"""respond_within with on_breach: reassign goes round the group once per wait, never back and forth for ever."""

from __future__ import annotations

from tests.conftest import THREE_AGENTS, free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import body_text, build_mail, make_due, open_desk
from tests.sink import Sink, customer_mail, wait_until
from tests.test_timers import _send, _to
from ticketd.app import build_app
from ticketd.settings import load_settings
from ticketd.timers import armed, fire_due_timers

RULES = THREE_AGENTS + """\
timers:
  new:  {respond_within: %(new)s, on_breach: reassign}
  open: {respond_within: %(open)s, on_breach: reassign}
"""


def _breach(desk, tid: int) -> int:
    """The ticket's armed timers run out now and the sweep fires; how many fired."""
    make_due(desk.app, tid)
    fired = fire_due_timers(desk.app)
    desk.flush()
    return fired


def _breach_mails(desk, recipient: str) -> list[str]:
    return [body_text(m) for m in desk.inbox(recipient) if str(m["Subject"]).startswith("[#") and "Overdue" in
            str(m["Subject"])]


def test_a_breach_goes_to_someone_who_has_not_missed_it_and_stops_when_everyone_has(make_app, sqlite_url):
    """docs/rules.md on_breach: reassign: each available agent misses the customer's wait at most once."""
    desk_gen = open_desk(make_app, sqlite_url, rules=RULES % {"new": "1h", "open": "1h"})
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        holders = [desk.assign(tid)]
        for _ in range(2):
            assert _breach(desk, tid) == 1
            holders.append(desk.ticket(tid)["assignee"])
        assert len(set(holders)) == 3, holders          # a1 -> a2 -> a3: never back to one who missed it
        assert _breach(desk, tid) == 1                  # the third misses it too: everyone has
        last = holders[-1]
        assert desk.ticket(tid)["assignee"] == last     # it stays with the current assignee
        with desk.app.engine.connect() as conn:
            assert armed(conn, tid) == []               # and no clock reassigns it again
        told = _breach_mails(desk, last)[-1]
        assert "everyone available in support has missed it" in told, told
        before = len(desk.sink.messages)
        assert _breach(desk, tid) == 0                  # nothing more, however long it waits
        assert len(desk.sink.messages) == before
        assert len(desk.events(tid, "timer_breached")) == 3

        # The customer writes again: a new wait, and everyone has a clock of their own again.
        desk.send(build_mail("cust@example.org", "Hello? Anyone?\n", subject=f"Re: [#{tid}] Printer on fire",
                             in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == ["respond"]
        assert _breach(desk, tid) == 1
        assert desk.ticket(tid)["assignee"] not in (None, last)

        # An agent's public reply and the customer's next question: a new wait too.
        holder = desk.ticket(tid)["assignee"]
        desk.send(build_mail(holder, "Have you tried water?\n", to=desk.agent_address(tid, holder),
                             subject=f"Re: [#{tid}] Printer on fire"))
        desk.send(build_mail("cust@example.org", "Water made it worse.\n", subject=f"Re: [#{tid}] Printer on fire",
                             in_reply_to=desk.last("cust@example.org")["Message-ID"]))
        assert desk.ticket(tid)["status"] == "open"
        assert _breach(desk, tid) == 1
        assert desk.ticket(tid)["assignee"] not in (None, holder)
    finally:
        desk_gen.close()


def test_an_assign_after_everyone_missed_it_gives_a_whole_clock_and_one_more_notice(make_app, sqlite_url):
    """docs/rules.md: `#assign` is a change; the new agent has a whole respond_within, then it stops again."""
    desk_gen = open_desk(make_app, sqlite_url, rules=RULES % {"new": "1h", "open": "1h"})
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        desk.assign(tid)
        for _ in range(3):
            assert _breach(desk, tid) == 1
        holder = desk.ticket(tid)["assignee"]
        other = next(a for a in ("a1@example.com", "a2@example.com", "a3@example.com") if a != holder)
        desk.send(build_mail(holder, f"#assign {other}\n", to=desk.agent_address(tid, holder),
                             subject=f"Re: [#{tid}] Printer on fire"))
        assert desk.ticket(tid)["assignee"] == other
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == ["respond"]
        assert _breach(desk, tid) == 1
        assert desk.ticket(tid)["assignee"] == other    # everyone has missed this wait: it stays
        assert "everyone available in support has missed it" in _breach_mails(desk, other)[-1]
        with desk.app.engine.connect() as conn:
            assert armed(conn, tid) == []
    finally:
        desk_gen.close()


def test_the_daemon_stops_bouncing_a_ticket_nobody_answers(tmp_path, sqlite_url):
    """With real short timers: a1 -> a2 and one notice that both missed it, then silence (no mail for ever)."""
    sink = Sink(free_port()).start()
    text = RULES.replace("  - {email: a3@example.com, name: A3, groups: [support]}\n", "") % {
        "new": "2s", "open": "3s"}
    config = write_config(tmp_path, sqlite_url, rules=text, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    daemon = DaemonProcess(config).start()
    try:
        _send(app, customer_mail(subject="Printer on fire"))
        wait_until(lambda: _to(sink, "[#1] Assigned to you", "a1@example.com"))
        wait_until(lambda: [m for m in _to(sink, "[#1] Overdue", "a2@example.com")
                            if "everyone available" in m.message.get_body(("plain",)).get_content()], timeout=20)
        sink.settle(quiet=6)            # three respond_within's worth: no clock left to fire
        overdue = [(m.rcpt_tos[0], m.message.get_body(("plain",)).get_content())
                   for m in sink.messages if m.message["Subject"].startswith("[#1] Overdue")]
        assert sorted(r for r, _ in overdue) == ["a1@example.com", "a2@example.com", "a2@example.com"], overdue
        assert len([t for _, t in overdue if "everyone available in support has missed it" in t]) == 1, overdue
        with app.engine.connect() as conn:
            assert armed(conn, 1) == []
    finally:
        daemon.stop()
        sink.stop()
        app.engine.dispose()
