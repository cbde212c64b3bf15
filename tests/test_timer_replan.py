"""Editing rules.yaml re-plans the timers already armed: each moved, cancelled or armed under the new rules.

PRODUCT.md: an admin must never see "a rules change that silently half-applied".
A shortened `respond_within` used to reach only tickets that changed status
later, a removed timer still fired (as "respond_within ? in new"), and a
timer added for a status never reached the tickets already in it. Now a
reload re-plans from when each timer's count started (docs/rules.md).
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
from datetime import datetime, timedelta

from sqlalchemy import select

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import Sink, customer_mail, wait_until
from tests.waiting import eventually
from ticketd.app import build_app
from ticketd.clock import iso, utcnow
from ticketd.domain.rules import TimerSpec
from ticketd.domain.timer_replan import (
    NewTimer,
    Replan,
    TimerRow,
    Timing,
    replan,
    rules_of_timing,
    statuses_retimed,
    timing_json,
    waiting_since,
)
from ticketd.domain.timers import add_business_seconds
from ticketd.rules_file import load_rules_text
from ticketd.rules_watch import RulesWatcher, reload, replan_armed_timers
from ticketd.settings import load_settings
from ticketd.store import tickets as store
from ticketd.store import timers as timer_rows
from ticketd.store.tables import events, timers
from ticketd.timer_replan import replan_timers, rules_timers_follow
from ticketd.timers import on_ticket_opened

AGENTS = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]}
  - {email: a2@example.com, name: A2, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""


def rules(timers_block: str, extra: str = "") -> str:
    return AGENTS + "timers:\n" + timers_block + extra


class Desk:
    """A real `ticketd run` on its own rules.yaml, the smarthost sink, and the database read beside it."""

    def __init__(self, tmp_path, db_url: str, text: str) -> None:
        self.sink = Sink(free_port()).start()
        self.port = free_port()
        self.config = write_config(tmp_path, db_url, rules=text, smtp_port=self.port, outbound_port=self.sink.port)
        self.rules_path = tmp_path / "rules.yaml"
        self.app = build_app(load_settings(self.config, environ={}))
        self.daemon = DaemonProcess(self.config).start()

    def stop(self) -> None:
        self.daemon.stop()
        self.sink.stop()
        self.app.engine.dispose()

    def mail(self, msg) -> None:
        with smtplib.SMTP("127.0.0.1", self.port) as client:
            client.send_message(msg)

    def to(self, recipient: str, subject: str) -> list:
        return [m.message for m in self.sink.messages
                if recipient in m.rcpt_tos and str(m.message["Subject"]).startswith(subject)]

    def new_ticket(self, tid: int, subject: str, sender: str):
        """A customer's mail opens ticket `tid`; (its assignee, the notice they got)."""
        self.mail(customer_mail(subject=subject, sender=sender))

        def assigned():
            for agent in ("a1@example.com", "a2@example.com"):
                if found := self.to(agent, f"[#{tid}] Assigned to you"):
                    return agent, found[0]
            return None
        return wait_until(assigned, timeout=20)

    def command(self, agent: str, notice, text: str) -> None:
        self.mail(build_mail(agent, text, to=str(notice["Reply-To"]), subject="Re: " + str(notice["Subject"]),
                             in_reply_to=str(notice["Message-ID"])))

    def ticket(self, tid: int) -> dict:
        with self.app.engine.connect() as conn:
            return store.get_ticket(conn, tid)

    def timers(self, tid: int, state: str | None = None) -> list[dict]:
        query = select(timers).where(timers.c.ticket_id == tid).order_by(timers.c.due_at, timers.c.id)
        if state:
            query = query.where(timers.c.state == state)
        with self.app.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def events(self, tid: int, kind: str) -> list[dict]:
        with self.app.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(events).where(events.c.ticket_id == tid, events.c.kind == kind)
                                                  .order_by(events.c.id)).mappings()]

    def write_rules(self, text: str) -> None:
        """As an admin should: a whole new file renamed over the old one."""
        tmp = self.rules_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.rules_path)

    def replanned(self, count: int) -> list[str]:
        """The daemon's `timers re-planned` log lines once it has reloaded the rules `count` times.

        The lines come after the reload's own; what was re-planned is checked in the database as well.
        """
        wait_until(lambda: len(re.findall(r"rules reloaded from", self.daemon.output())) >= count, timeout=20)
        return eventually(lambda: (found := re.findall(r"timers re-planned: .*", self.daemon.output()))
                          and len(found) >= count and found, timeout=5) or []


def _by_kind(rows: list[dict]) -> dict[str, dict]:
    return {r["kind"]: r for r in rows}


def test_a_changed_duration_moves_the_armed_timers_from_when_they_started(tmp_path, db_url):
    desk = Desk(tmp_path, db_url, rules("  new: {respond_within: 4h, on_breach: notify}\n"
                                        "  waiting_customer: {warn_after: 3d, close_after: 4d}\n"))
    try:
        fresh, _ = desk.new_ticket(1, "Printer on fire", "c1@example.org")
        agent, notice = desk.new_ticket(2, "Scanner on fire", "c2@example.org")
        desk.command(agent, notice, "#status waiting_customer\nWhich model is it?\n")
        wait_until(lambda: desk.ticket(2)["status"] == "waiting_customer", timeout=20)
        [respond] = desk.timers(1, "armed")
        waiting = _by_kind(desk.timers(2, "armed"))
        assert set(waiting) == {"warn", "close"}

        # Shorter, and longer: each counts again from when its clock started.
        desk.write_rules(rules("  new: {respond_within: 10m, on_breach: notify}\n"
                               "  waiting_customer: {warn_after: 1d, close_after: 5d}\n"))
        lines = desk.replanned(1)
        [moved] = desk.timers(1, "armed")
        assert (moved["id"], moved["created_at"]) == (respond["id"], respond["created_at"])
        assert moved["due_at"] == respond["created_at"] + timedelta(minutes=10)
        now_waiting = _by_kind(desk.timers(2, "armed"))
        assert now_waiting["warn"]["due_at"] == waiting["warn"]["created_at"] + timedelta(days=1)
        assert now_waiting["close"]["due_at"] == waiting["close"]["created_at"] + timedelta(days=5)
        [event] = desk.events(1, "timer_replanned")
        assert (event["actor"], event["from_value"], event["to_value"]) == (
            "system:rules", iso(respond["due_at"]), iso(moved["due_at"]))
        assert "respond_within 10m in new" in event["reason"]
        assert event["rules_hash"] == load_rules_text(desk.rules_path.read_text()).digest
        assert lines[0].startswith("timers re-planned: 3 moved, 0 cancelled, 0 armed")

        # Shortened into the past: it fires at the next sweep, once, and says what it is now.
        desk.write_rules(rules("  new: {respond_within: 1s, on_breach: notify}\n"
                               "  waiting_customer: {warn_after: 1d, close_after: 5d}\n"))
        desk.replanned(2)
        wait_until(lambda: desk.to(fresh, "[#1] Overdue"), timeout=20)
        desk.sink.settle(quiet=2)
        assert len(desk.to(fresh, "[#1] Overdue")) == 1
        [breach] = desk.events(1, "timer_breached")
        assert breach["reason"] == "respond_within 1s in new"
    finally:
        desk.stop()


def test_a_removed_timer_is_cancelled_and_an_added_one_reaches_tickets_already_in_its_status(tmp_path, sqlite_url):
    before = rules("  new: {respond_within: 4h, on_breach: notify}\n")
    desk = Desk(tmp_path, sqlite_url, before)
    try:
        first, _ = desk.new_ticket(1, "Printer on fire", "c1@example.org")
        agent, notice = desk.new_ticket(2, "Scanner on fire", "c2@example.org")
        desk.command(agent, notice, "#propose\nTurn it off and on again.\n")
        wait_until(lambda: desk.ticket(2)["status"] == "solution_proposed", timeout=20)
        assert desk.timers(2, "armed") == []   # solution_proposed has no timers yet
        [entered] = [e["at"] for e in desk.events(2, "status") if e["to_value"] == "solution_proposed"]
        [respond] = desk.timers(1, "armed")

        def reminders() -> list:
            return [m for m in desk.to("c2@example.org", "[#2]")
                    if "we proposed a solution" in m.get_body(("plain",)).get_content()]

        after = rules("  solution_proposed: {warn_after: 1s, close_after: 1h}\n")
        desk.write_rules(after)
        lines = desk.replanned(1)
        assert [(t["id"], t["state"]) for t in desk.timers(1)] == [(respond["id"], "cancelled")]
        [cancelled] = desk.events(1, "timer_replanned")
        assert (cancelled["from_value"], cancelled["to_value"]) == (iso(respond["due_at"]), None)
        assert "respond_within 4h in new" in cancelled["reason"]
        assert lines[0].startswith("timers re-planned: 0 moved, 1 cancelled, 2 armed")

        # Counted from when the ticket entered solution_proposed: the warning is due, the close is not.
        wait_until(lambda: reminders(), timeout=20)
        assert [e["to_value"] for e in desk.events(2, "timer_replanned")] == [
            iso(entered + timedelta(seconds=1)), iso(entered + timedelta(hours=1))]
        [close] = desk.timers(2, "armed")   # the warning gives its whole hour, however late it went out
        assert close["kind"] == "close" and close["due_at"] >= entered + timedelta(hours=1)

        desk.sink.settle(quiet=2)
        assert desk.to(first, "[#1] Overdue") == []   # the removed timer never fires
        assert len(reminders()) == 1

        # Another process re-planning the same change (a `ticketd worker`) finds nothing left to do:
        # the warning that fired is not armed again.
        done = replan_timers(desk.app, load_rules_text(before), load_rules_text(after))
        assert (done.moved, done.cancelled, done.armed) == (0, 0, 0)
        assert len(desk.timers(2, "armed")) == 1
    finally:
        desk.stop()


def test_rules_edited_while_the_daemon_was_stopped_are_re_planned_at_its_next_start(tmp_path, db_url):
    """docs/rules.md: the armed timers follow the file the daemon starts with; a start with the same file
    changes nothing and writes no event."""
    desk = Desk(tmp_path, db_url, rules("  new: {respond_within: 4h, on_breach: notify}\n"))
    try:
        desk.new_ticket(1, "Printer on fire", "c1@example.org")
        agent, notice = desk.new_ticket(2, "Scanner on fire", "c2@example.org")
        desk.command(agent, notice, "#propose\nTurn it off and on again.\n")
        wait_until(lambda: desk.ticket(2)["status"] == "solution_proposed", timeout=20)
        [entered] = [e["at"] for e in desk.events(2, "status") if e["to_value"] == "solution_proposed"]
        [respond] = desk.timers(1, "armed")
        assert desk.timers(2, "armed") == []
        assert desk.daemon.terminate() == 0

        desk.write_rules(rules("  new: {respond_within: 10m, on_breach: notify}\n"
                               "  solution_proposed: {warn_after: 5d, close_after: 7d}\n"))
        desk.daemon = DaemonProcess(desk.config).start()
        # Done before the daemon says it runs, so before its first timer sweep.
        [moved] = desk.timers(1, "armed")
        assert (moved["id"], moved["due_at"]) == (respond["id"], respond["created_at"] + timedelta(minutes=10))
        [event] = desk.events(1, "timer_replanned")
        assert (event["from_value"], event["to_value"]) == (iso(respond["due_at"]), iso(moved["due_at"]))
        assert event["rules_hash"] == load_rules_text(desk.rules_path.read_text()).digest
        assert [(t["kind"], t["due_at"]) for t in desk.timers(2, "armed")] == [
            ("warn", entered + timedelta(days=5)), ("close", entered + timedelta(days=7))]
        assert len(desk.events(2, "timer_replanned")) == 2
        assert re.search(r"timers re-planned: 1 moved, 0 cancelled, 2 armed", desk.daemon.output())

        # Stopped and started again on the same file: nothing to do, nothing written.
        before = (desk.timers(1), desk.timers(2), desk.events(1, "timer_replanned"), desk.events(2, "timer_replanned"))
        assert desk.daemon.terminate() == 0
        desk.daemon = DaemonProcess(desk.config).start()
        desk.sink.settle(quiet=1)
        assert (desk.timers(1), desk.timers(2), desk.events(1, "timer_replanned"),
                desk.events(2, "timer_replanned")) == before
        assert "timers re-planned" not in desk.daemon.output()
    finally:
        desk.stop()


def _hours_away_from_now() -> str:
    """A business_hours block whose one daily hour starts at least three hours from now (UTC)."""
    start = (utcnow().hour + 3) % 24
    start = 1 if start == 23 else start
    span = f'"{start:02d}:00-{start + 1:02d}:00"'
    days = ", ".join(f"{d}: {span}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    return f"business_hours:\n  timezone: UTC\n  week: {{{days}}}\n"


def test_business_hours_and_remind_before_are_honoured_and_dates_from_the_ticket_stay(tmp_path, sqlite_url):
    desk = Desk(tmp_path, sqlite_url, rules("  new: {respond_within: 4h, on_breach: notify}\n"
                                            "  in_development: {remind_before: 1d}\n"))
    try:
        desk.new_ticket(1, "Printer on fire", "c1@example.org")
        agent, notice = desk.new_ticket(2, "Scanner on fire", "c2@example.org")
        desk.command(agent, notice, "#dev a1@example.com BUG-7 10d\n")
        wait_until(lambda: desk.ticket(2)["status"] == "in_development", timeout=20)
        agent, notice = desk.new_ticket(3, "Fax on fire", "c3@example.org")
        desk.command(agent, notice, "#postpone 3d\n")
        wait_until(lambda: desk.ticket(3)["status"] == "postponed", timeout=20)
        [respond] = desk.timers(1, "armed")
        dev_due = desk.ticket(2)["dev_due"]
        early, on_the_day = desk.timers(2, "armed")
        assert (early["due_at"], on_the_day["due_at"]) == (dev_due - timedelta(days=1), dev_due)
        [wake] = desk.timers(3, "armed")

        after = rules("  new: {respond_within: 2h, on_breach: notify, business_hours: true}\n"
                      "  in_development: {remind_before: 2d}\n", _hours_away_from_now())
        desk.write_rules(after)
        lines = desk.replanned(1)
        hours = load_rules_text(after).business_hours
        [moved] = desk.timers(1, "armed")
        assert moved["due_at"] == add_business_seconds(respond["created_at"], 2 * 3600, hours)
        assert moved["due_at"] - respond["created_at"] > timedelta(hours=3)   # counted in business hours
        assert [(t["id"], t["due_at"]) for t in desk.timers(2, "armed")] == [
            (early["id"], dev_due - timedelta(days=2)), (on_the_day["id"], dev_due)]
        assert [(t["id"], t["due_at"]) for t in desk.timers(3, "armed")] == [(wake["id"], wake["due_at"])]
        assert lines[0].startswith("timers re-planned: 2 moved, 0 cancelled, 0 armed")

        # A change that moves no timer (on_breach, an agent more) touches none.
        desk.write_rules(after.replace("on_breach: notify", "on_breach: reassign").replace(
            "groups:\n", "  - {email: a3@example.com, name: A3, groups: [support]}\ngroups:\n", 1))
        lines = desk.replanned(2)
        assert len(desk.events(1, "timer_replanned")) == 1 and len(desk.events(2, "timer_replanned")) == 1
        assert desk.events(3, "timer_replanned") == []
        assert lines[1].startswith("timers re-planned: 0 moved, 0 cancelled, 0 armed")
    finally:
        desk.stop()


def test_a_timer_moved_later_is_not_claimed_by_a_sweep_that_saw_it_due(make_app, sqlite_url):
    """The sweep reads the due timers, then claims each: a re-plan in between must win."""
    app = make_app(sqlite_url)
    now = utcnow()
    with app.engine.begin() as conn:
        tid = store.create_ticket(conn, subject="t", status="new", requester="c@example.org",
                                  group_name="support", created_at=now, updated_at=now)
        timer_rows.arm_timer(conn, tid, "respond", "new", now - timedelta(seconds=1), now - timedelta(hours=1))
    with app.engine.connect() as conn:
        [(timer_id, _)] = timer_rows.due_armed(conn, utcnow(), 10)
    with app.engine.begin() as conn:   # what a re-plan to a longer respond_within writes
        assert timer_rows.move_timer(conn, timer_id, now + timedelta(hours=3))
    with app.engine.begin() as conn:
        assert timer_rows.claim_timer(conn, timer_id, utcnow()) is None
    with app.engine.connect() as conn:
        [row] = timer_rows.armed(conn, tid)
    assert (row["id"], row["due_at"]) == (timer_id, now + timedelta(hours=3))
    assert isinstance(row["created_at"], datetime)


def test_a_replan_that_fails_is_logged_and_tried_again_until_it_is_done(make_app, sqlite_url, tmp_path, caplog):
    """The new rules apply; the timers they owe are never left silently on the old ones."""
    caplog.set_level(logging.INFO, logger="ticketd.rules")
    app = make_app(sqlite_url, rules=rules("  new: {respond_within: 4h, on_breach: notify}\n"))
    now = utcnow()
    with app.engine.begin() as conn:
        tid = store.create_ticket(conn, subject="t", status="new", requester="c@example.org",
                                  group_name="support", created_at=now, updated_at=now)
        store.add_event(conn, tid, now, "c@example.org", "created", to_value="new")
        on_ticket_opened(conn, app, tid, now)
        conn.exec_driver_sql("ALTER TABLE timers RENAME TO timers_elsewhere")   # the re-plan cannot work
    (tmp_path / "rules.yaml").write_text(rules("  new: {respond_within: 10m, on_breach: notify}\n"))
    assert reload(app) is True
    assert app.rules.timer("new").respond_within == 600
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(e.startswith(f"timers NOT re-planned for rules {app.rules.digest[:12]}") for e in errors), errors
    with app.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE timers_elsewhere RENAME TO timers")
    RulesWatcher(app, interval=60, settle=0.05)._poll()   # the watcher's next poll tries again
    with app.engine.connect() as conn:
        [clock] = timer_rows.armed(conn, tid)
    assert clock["due_at"] == now + timedelta(minutes=10)
    assert any(r.getMessage().startswith("timers re-planned: 1 moved") for r in caplog.records)


def test_a_replan_still_owed_when_the_daemon_stopped_is_done_at_its_next_start(make_app, sqlite_url, tmp_path):
    """The database, not the stopped process, remembers which rules the armed timers follow."""
    before = rules("  new: {respond_within: 4h, on_breach: notify}\n")
    after = rules("  new: {respond_within: 10m, on_breach: notify}\n")
    app = make_app(sqlite_url, rules=before)
    assert rules_timers_follow(app) is None          # the first start records the rules in force
    now = utcnow()
    with app.engine.begin() as conn:
        tid = store.create_ticket(conn, subject="t", status="new", requester="c@example.org",
                                  group_name="support", created_at=now, updated_at=now)
        store.add_event(conn, tid, now, "c@example.org", "created", to_value="new")
        on_ticket_opened(conn, app, tid, now)
        conn.exec_driver_sql("ALTER TABLE timers RENAME TO timers_elsewhere")   # the reload's re-plan fails
    (tmp_path / "rules.yaml").write_text(after)
    assert reload(app) is True
    with app.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE timers_elsewhere RENAME TO timers")

    restarted = make_app(sqlite_url, rules=after)    # stopped before the retry, started on the same file
    owed = rules_timers_follow(restarted)
    assert owed is not None and owed.digest == load_rules_text(before).digest
    assert owed.timer("new") == load_rules_text(before).timer("new")
    assert replan_armed_timers(restarted, owed) is True
    with restarted.engine.connect() as conn:
        [clock] = timer_rows.armed(conn, tid)
    assert clock["due_at"] == now + timedelta(minutes=10)
    assert rules_timers_follow(restarted) is None    # done: the next start has nothing to do


def test_the_timers_a_database_keeps_read_back_as_the_rules_gave_them():
    text = rules("  new: {respond_within: 2h, on_breach: notify, business_hours: true}\n"
                 "  waiting_customer: {warn_after: 1d}\n  in_development: {remind_before: 1d}\n",
                 "business_hours:\n  timezone: Europe/Berlin\n"
                 "  week: {mon: \"09:00-17:00\", fri: [\"09:00-12:00\", \"13:00-16:00\"]}\n"
                 "  holidays: [2026-12-24]\n")
    kept = load_rules_text(text)
    back = rules_of_timing(timing_json(kept), kept.digest)
    assert (back.timers, back.business_hours, back.digest) == (kept.timers, kept.business_hours, kept.digest)
    assert statuses_retimed(back, kept) == ()
    assert statuses_retimed(back, load_rules_text(text.replace("fri:", "thu:"))) == ("new",)


# ---------------------------------------------------------------- the decisions (pure)

T0 = datetime(2026, 3, 2, 10, 0)
DAY = 86400


def test_a_close_the_warning_announced_moves_later_never_earlier():
    """PRODUCT.md waiting_customer: the warning told the customer when the ticket closes."""
    warned = TimerRow(1, "warn", "fired", T0 + timedelta(days=3), T0, fired_at=T0 + timedelta(days=3))
    close = TimerRow(2, "close", "armed", T0 + timedelta(days=4), T0)
    before = Timing(TimerSpec(warn_after=3 * DAY, close_after=4 * DAY), None)
    sooner = Timing(TimerSpec(warn_after=3 * DAY, close_after=3 * DAY + 3600), None)
    later = Timing(TimerSpec(warn_after=3 * DAY, close_after=6 * DAY), None)
    now = T0 + timedelta(days=3, hours=1)
    assert replan("waiting_customer", [warned, close], before, sooner, entered=T0, now=now) == Replan()
    change = replan("waiting_customer", [warned, close], before, later, entered=T0, now=now)
    assert [(row.id, due) for row, due, *_ in change.moved] == [(2, T0 + timedelta(days=6))]
    # A warning sent late (the daemon was down) armed the close again from when it went out:
    # the new grace counts from then too.
    late = TimerRow(1, "warn", "fired", T0 + timedelta(days=3), T0, fired_at=T0 + timedelta(days=5))
    moved_close = TimerRow(2, "close", "armed", T0 + timedelta(days=6), T0 + timedelta(days=5))
    longer_grace = Timing(TimerSpec(warn_after=3 * DAY, close_after=5 * DAY), None)
    change = replan("waiting_customer", [late, moved_close], before, longer_grace, entered=T0, now=now)
    assert [(row.id, due) for row, due, *_ in change.moved] == [(2, T0 + timedelta(days=7))]
    # The history names when the count started: the wait's start, not when the late warning armed it again.
    assert [start for *_, start in change.moved] == [T0]


def test_an_added_respond_clock_starts_only_for_a_customer_who_waits():
    before, after = Timing(None, None), Timing(TimerSpec(respond_within=3600, on_breach="notify"), None)
    now = T0 + timedelta(hours=5)
    assert replan("open", [], before, after, entered=T0, now=now) == Replan()   # answered: nobody waits
    change = replan("open", [], before, after, entered=T0, now=now, customer_waiting_since=T0 + timedelta(hours=2))
    assert change.armed == (NewTimer("respond", T0 + timedelta(hours=3), T0 + timedelta(hours=2),
                                     "respond_within 1h in open", "the customer's mail that waits for an answer"),)
    # The ticket's history does not say when it entered its status: counted from the customer's mail.
    change = replan("open", [], before, after, entered=None, now=now, customer_waiting_since=T0)
    assert [(t.start, t.due_at) for t in change.armed] == [(T0, T0 + timedelta(hours=1))]


def test_the_customer_waits_since_their_oldest_mail_after_the_last_answer():
    def message(role, hours, internal=False, auto=False):
        return {"author_role": role, "internal": internal, "auto_generated": auto,
                "created_at": T0 + timedelta(hours=hours)}

    newest_first = [message("customer", 5), message("agent", 4, internal=True), message("customer", 3, auto=True),
                    message("customer", 2), message("agent", 1), message("customer", 0)]
    assert waiting_since(newest_first) == T0 + timedelta(hours=2)
    assert waiting_since([message("agent", 6), *newest_first]) is None
    assert waiting_since([]) is None


def test_only_statuses_whose_timers_fall_due_at_other_times_are_re_planned():
    base = load_rules_text(rules("  new: {respond_within: 4h, on_breach: notify}\n"
                                 "  open: {respond_within: 1d, business_hours: true}\n",
                                 "business_hours:\n  timezone: UTC\n  week: {mon: \"09:00-17:00\"}\n"))
    same_times = load_rules_text(rules("  new: {respond_within: 4h, on_breach: reassign}\n"
                                       "  open: {respond_within: 1d, business_hours: true}\n",
                                       "business_hours:\n  timezone: UTC\n  week: {mon: \"09:00-17:00\"}\n"))
    other_hours = load_rules_text(rules("  new: {respond_within: 4h, on_breach: notify}\n"
                                        "  open: {respond_within: 1d, business_hours: true}\n",
                                        "business_hours:\n  timezone: UTC\n  week: {tue: \"09:00-17:00\"}\n"))
    assert statuses_retimed(base, same_times) == ()
    assert statuses_retimed(base, other_hours) == ("open",)
    # waiting_customer's defaults (3d, 4d) written out change nothing.
    written = load_rules_text(base_text := rules("  waiting_customer: {warn_after: 3d, close_after: 4d}\n"))
    assert statuses_retimed(load_rules_text(base_text.replace("  waiting_customer: {warn_after: 3d, close_after: 4d}\n",
                                                              "  new: {respond_within: 4h}\n")), written) == ("new",)
