"""Timers that fire late, or on a ticket whose customer is already answered, through the real daemon.

A daemon down over a weekend fires every due timer in its first sweep; a
customer answered by an agent has no clock running for them; a ticket given
out late keeps a clock. Each test runs `ticketd run`, mails it as customers
and agents do, and moves `timers.due_at` as time passing would (then SIGUSR1,
the daemon's "sweep now").
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import customer_mail, wait_until
from ticketd.app import build_app
from ticketd.clock import utcnow
from ticketd.settings import load_settings
from ticketd.store import tickets as store
from ticketd.store.tables import events, timers

RULES = """\
agents:
  - {email: a1@example.com, name: Anna One, groups: [support], timezone: Europe/Berlin}
  - {email: a2@example.com, name: Ben Two, groups: [support], timezone: Asia/Tokyo}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
timers:
  new:              {respond_within: 1h, on_breach: reassign}
  open:             {respond_within: 1h, on_breach: reassign}
  waiting_customer: {warn_after: 1h, close_after: 3h}
  in_development:   {remind_before: 1d}
"""


class Desk:
    """A running daemon, its sink, and what a test does to it as customers, agents and passing time."""

    def __init__(self, tmp_path, db_url: str, sink, processes, rules: str = RULES) -> None:
        self.sink = sink
        self.config = write_config(tmp_path, db_url, rules=rules, outbound_port=sink.port)
        self.app = build_app(load_settings(self.config, environ={}))
        self.daemon = DaemonProcess(self.config).start()
        processes.append(self.daemon)

    def send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", self.app.settings.smtp.host_port[1]) as client:
            client.send_message(msg)

    def mails(self, recipient: str, subject: str = "") -> list[EmailMessage]:
        return [m.message for m in self.sink.messages
                if recipient in m.rcpt_tos and str(m.message["Subject"]).startswith(subject)]

    def wait_mail(self, recipient: str, subject: str = "", timeout: float = 20) -> EmailMessage:
        return wait_until(lambda: self.mails(recipient, subject), timeout=timeout)[-1]

    def reply(self, agent: str, notice: EmailMessage, body: str) -> None:
        """The agent answers one of their notices through its Reply-To, as a mail client does."""
        self.send(build_mail(agent, body, to=str(notice["Reply-To"]), subject="Re: " + str(notice["Subject"]),
                             in_reply_to=str(notice["Message-ID"])))

    def ticket(self, ticket_id: int) -> dict:
        with self.app.engine.connect() as conn:
            return store.get_ticket(conn, ticket_id)

    def armed(self, ticket_id: int) -> list[dict]:
        with self.app.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(timers).where(
                timers.c.ticket_id == ticket_id, timers.c.state == "armed").order_by(timers.c.due_at)).mappings()]

    def events(self, ticket_id: int, kind: str) -> list[dict]:
        with self.app.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(events).where(
                events.c.ticket_id == ticket_id, events.c.kind == kind).order_by(events.c.id)).mappings()]

    def due(self, ticket_id: int, **ago_by_kind: timedelta) -> None:
        """Move the ticket's armed timers of each kind to have been due that long ago, in one transaction."""
        now = utcnow()
        with self.app.engine.begin() as conn:
            for kind, ago in ago_by_kind.items():
                moved = conn.execute(update(timers).where(timers.c.ticket_id == ticket_id, timers.c.kind == kind,
                                                          timers.c.state == "armed").values(due_at=now - ago))
                assert moved.rowcount >= 1, kind
        os.kill(self.daemon.proc.pid, signal.SIGUSR1)

    def assigned(self, ticket_id: int) -> tuple[str, EmailMessage]:
        """The agent the new ticket went to, and their notice."""
        agent = wait_until(lambda: self.ticket(ticket_id) and self.ticket(ticket_id)["assignee"], timeout=20)
        return agent, self.wait_mail(agent, f"[#{ticket_id}] Assigned to you")

    def close(self) -> None:
        self.app.engine.dispose()


@pytest.fixture
def desk(tmp_path, sqlite_url, sink, processes):
    d = Desk(tmp_path, sqlite_url, sink, processes)
    yield d
    d.close()


def _body(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


# ---------------------------------------------------------------- 1. a warning that fires late


def test_a_late_warning_gives_the_customer_the_grace_it_promises(desk):
    """Down past both the warning and the close: the warning names a time ahead, and the close waits for it."""
    desk.send(customer_mail(subject="Keyboard sticky"))
    agent, notice = desk.assigned(1)
    desk.reply(agent, notice, "#status waiting_customer\nWhich keyboard is it?\n")
    wait_until(lambda: {t["kind"] for t in desk.armed(1)} == {"warn", "close"}, timeout=20)
    desk.due(1, warn=timedelta(hours=30), close=timedelta(hours=6))   # a long weekend without the daemon
    reminder = wait_until(lambda: [m for m in desk.mails("cust@example.org", "[#1]")
                                   if "still waiting" in _body(m)], timeout=20)[-1]
    promised = re.search(r"it will be closed on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", _body(reminder))
    assert promised, _body(reminder)
    desk.sink.settle(quiet=1.5)
    # close_after - warn_after (3h - 1h) from the warning that went out now
    closes = datetime.fromisoformat(promised.group(1))
    assert timedelta(hours=1, minutes=58) < closes - utcnow() <= timedelta(hours=2), (closes, utcnow())
    assert desk.ticket(1)["status"] == "waiting_customer"
    assert not [m for m in desk.mails("cust@example.org", "[#1]") if "is closed" in _body(m)]
    [close] = [t for t in desk.armed(1) if t["kind"] == "close"]
    assert close["due_at"].replace(second=0, microsecond=0) == closes
    # The close still comes, at the time the customer was given.
    desk.due(1, close=timedelta(seconds=1))
    wait_until(lambda: desk.ticket(1)["status"] == "closed", timeout=20)


def test_a_late_coming_up_reminder_is_not_sent_once_the_due_date_has_passed(desk):
    """The early "coming up" reminder and the due date's own both late: one reminder, saying it is reached."""
    desk.send(customer_mail(subject="Bug in export"))
    agent, notice = desk.assigned(1)
    desk.reply(agent, notice, "#dev a1@example.com BUG-1 5d\n")
    wait_until(lambda: [t["kind"] for t in desk.armed(1)] == ["due", "due"], timeout=20)
    desk.sink.settle(quiet=1)
    before = len(desk.mails(agent, "[#1] Reminder"))
    coming_up, on_the_day = desk.armed(1)
    with desk.app.engine.begin() as conn:   # the due date itself went by while the daemon was down
        now = utcnow()
        store.update_ticket(conn, 1, now, dev_due=now - timedelta(hours=6))
        for timer, ago in ((coming_up, timedelta(hours=30)), (on_the_day, timedelta(hours=6))):
            conn.execute(update(timers).where(timers.c.id == timer["id"]).values(due_at=now - ago))
    os.kill(desk.daemon.proc.pid, signal.SIGUSR1)
    wait_until(lambda: desk.armed(1) == [], timeout=20)
    desk.sink.settle(quiet=1.5)
    reminders = [_body(m) for m in desk.mails(agent, "[#1] Reminder")][before:]
    assert len(reminders) == 1 and "reached" in reminders[0] and "coming up" not in reminders[0], reminders


# ---------------------------------------------------------------- 2. a postponed ticket waking up


def test_a_waking_ticket_starts_a_respond_clock_only_for_a_customer_waiting(desk):
    """docs/rules.md: respond_within counts from the customer's mail that waits for an answer, not from a wake-up."""
    desk.send(customer_mail(subject="Renew in spring"))
    answered_by, answered_notice = desk.assigned(1)
    desk.reply(answered_by, answered_notice, "Noted, we renew it in March.\n")
    wait_until(lambda: desk.ticket(1)["status"] == "open", timeout=20)
    desk.reply(answered_by, answered_notice, "#postpone 3d\n")
    desk.send(customer_mail(subject="Quote please"))   # postponed before anyone answered
    waiting_for, waiting_notice = desk.assigned(2)
    desk.reply(waiting_for, waiting_notice, "#postpone 3d\n")
    wait_until(lambda: desk.ticket(1)["status"] == desk.ticket(2)["status"] == "postponed", timeout=20)

    desk.due(1, wake=timedelta(seconds=1))
    desk.due(2, wake=timedelta(seconds=1))
    wait_until(lambda: desk.ticket(1)["status"] == desk.ticket(2)["status"] == "open", timeout=20)
    assert desk.armed(1) == []                          # nobody waits: nothing to be overdue for
    [clock] = desk.armed(2)                             # the customer's question still waits: a whole hour
    assert clock["kind"] == "respond" and clock["due_at"] > utcnow() + timedelta(minutes=59)
    assert desk.ticket(1)["assignee"] == answered_by


# ---------------------------------------------------------------- 3. a clock the agent has answered


def test_a_public_agent_reply_stops_the_respond_clock(desk):
    """An answered customer has nothing due: no armed clock, no "next timer" in #summary, none in status --json."""
    import json

    from tests.cli import cli_ok

    desk.send(customer_mail(subject="Password reset"))
    agent, notice = desk.assigned(1)
    assert [t["kind"] for t in desk.armed(1)] == ["respond"]
    desk.reply(agent, notice, "Done: you can log in now.\n")
    wait_until(lambda: desk.ticket(1)["status"] == "open", timeout=20)
    assert desk.armed(1) == []
    assert json.loads(cli_ok(desk.config, "status", "--json"))["timers"]["armed"] == 0
    [me] = [a for a in json.loads(cli_ok(desk.config, "agents", "list", "--json")) if a["email"] == agent]
    desk.send(build_mail(agent, "#summary\n", to=me["desk_address"], subject="summary"))
    summary = desk.wait_mail(agent, "Your tickets")
    assert "[#1] Password reset" in _body(summary) and "next timer" not in _body(summary), _body(summary)
    # The customer's next question starts a clock of its own.
    desk.send(customer_mail(subject="Re: [#1] Password reset", body="It fails again.\n"))
    wait_until(lambda: [t["kind"] for t in desk.armed(1)] == ["respond"], timeout=20)


# ---------------------------------------------------------------- 4. a breach nobody could take


def test_a_ticket_given_out_after_its_breach_gets_a_fresh_clock(desk):
    """Everyone away at the breach: whoever comes back gets the ticket with a whole respond_within, told it is late."""
    from tests.cli import cli_ok

    for agent in ("a1@example.com", "a2@example.com"):
        cli_ok(desk.config, "agents", "away", agent)
    desk.send(customer_mail(subject="Printer offline"))
    wait_until(lambda: desk.events(1, "assignment_waiting"), timeout=20)
    desk.due(1, respond=timedelta(seconds=1))
    wait_until(lambda: desk.events(1, "timer_breached"), timeout=20)
    assert desk.armed(1) == [] and desk.ticket(1)["assignee"] is None

    cli_ok(desk.config, "agents", "back", "a1@example.com")
    os.kill(desk.daemon.proc.pid, signal.SIGUSR1)
    notice = desk.wait_mail("a1@example.com", "[#1] Assigned to you")
    assert desk.ticket(1)["assignee"] == "a1@example.com"
    [clock] = desk.armed(1)
    assert clock["kind"] == "respond" and clock["due_at"] > utcnow() + timedelta(minutes=59)
    assert "already overdue" in _body(notice), _body(notice)


# ---------------------------------------------------------------- 5. who a due-date reminder went to


def test_a_due_date_reminder_records_who_got_it(desk):
    """`#dev` may name someone who is no agent (a bare name): the history names the agents mailed, not them."""
    desk.send(customer_mail(subject="Export broken"))
    agent, notice = desk.assigned(1)
    desk.reply(agent, notice, "#dev Bob BUG-2 5d\n")
    wait_until(lambda: [t["kind"] for t in desk.armed(1)] == ["due", "due"], timeout=20)
    desk.due(1, due=timedelta(seconds=1))
    wait_until(lambda: len(desk.events(1, "dev_due_reminder")) == 2, timeout=20)
    desk.sink.settle(quiet=1)
    assert [e["to_value"] for e in desk.events(1, "dev_due_reminder")] == [agent, agent]
    assert len(desk.mails(agent, "[#1] Reminder")) == 2 and not desk.mails("Bob", "[#1] Reminder")


# ---------------------------------------------------------------- 6. the agent's time zone


def test_wake_up_and_due_date_reminders_show_the_agents_own_time_zone(desk):
    """docs/rules.md "Time zones": times in mail are the reader's, with the zone's name, never raw UTC ISO."""
    zones = {"a1@example.com": "Europe/Berlin", "a2@example.com": "Asia/Tokyo"}
    desk.send(customer_mail(subject="Later"))
    agent, notice = desk.assigned(1)
    desk.reply(agent, notice, "#postpone 2030-11-30 15:00\n")   # read in the agent's zone
    wait_until(lambda: [t["kind"] for t in desk.armed(1)] == ["wake"], timeout=20)
    desk.due(1, wake=timedelta(seconds=1))
    woke = _body(desk.wait_mail(agent, "[#1] Reminder"))
    assert f"postponed until 2030-11-30 15:00 {zones[agent]}, reached" in woke, woke

    desk.reply(agent, notice, "#dev a1@example.com BUG-1 2030-12-15\n")   # the agent's midnight
    wait_until(lambda: [t["kind"] for t in desk.armed(1)] == ["due", "due"], timeout=20)
    desk.due(1, due=timedelta(seconds=1))
    wait_until(lambda: len(desk.mails(agent, "[#1] Reminder")) == 3, timeout=20)
    for reminder in desk.mails(agent, "[#1] Reminder")[1:]:
        assert "development due 2030-12-15 (coming up)" in _body(reminder), _body(reminder)


# ---------------------------------------------------------------- 7. what a breach says


def test_a_breach_tells_each_agent_once_what_happened_and_what_is_theirs(desk):
    """The new agent reads why the ticket came to them; the previous one whom it went to, and no call to answer."""
    desk.send(customer_mail(subject="Printer on fire"))
    before, _ = desk.assigned(1)
    desk.due(1, respond=timedelta(seconds=1))
    after = "a2@example.com" if before == "a1@example.com" else "a1@example.com"
    names = {"a1@example.com": "Anna One", "a2@example.com": "Ben Two"}
    taken = _body(desk.wait_mail(after, "[#1] Overdue"))
    lost = _body(desk.wait_mail(before, "[#1] Overdue"))
    first = taken.splitlines()[0]
    assert first.count("respond_within 1h in new") == 1 and "breached" not in first, first
    assert f"from {names[before]} <{before}>" in first, first
    assert "Reply to this mail to answer the customer." in taken
    assert f"reassigned to {names[after]} <{after}>" in lost.splitlines()[0], lost
    assert "Reply to this mail to answer the customer." not in lost
    assert f"now with {names[after]} <{after}>" in lost, lost
