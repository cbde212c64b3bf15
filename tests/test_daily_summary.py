"""The agents' daily summary: when it is due, what it lists, that it goes once, and that its links act as the agent."""

from __future__ import annotations

import email.utils
import threading
from datetime import datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ingest.match import desk_address
from tests.desk import body_text, build_mail, open_desk
from ticketd import daily_summary
from ticketd.clock import utcnow
from ticketd.daily_summary import send_daily_summaries
from ticketd.domain.daily_summary import DailySummary, latest_slot, ordered
from ticketd.rules_file import RulesError, load_rules_text
from ticketd.store.tables import outbox, timers
from workers.sweeps import sweep_once

WEEKDAYS = frozenset(range(5))
CUSTOMER, ALICE, BOB, CAROL, DAVE = ("cust@example.org", "alice@example.com", "bob@example.com",
                                     "carol@example.com", "dave@example.com")


# ---------------------------------------------------------------- when it is due (pure)


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 11, 23, 7, 29), None),                              # Monday 08:29 in Berlin: not yet
    (datetime(2026, 11, 23, 7, 30), datetime(2026, 11, 23, 7, 30)),     # 08:30 CET is 07:30 UTC
    (datetime(2026, 11, 23, 22, 59), datetime(2026, 11, 23, 7, 30)),    # still Monday in Berlin
    (datetime(2026, 11, 23, 23, 1), None),                              # Tuesday 00:01 in Berlin: not yet
    (datetime(2026, 11, 28, 12, 0), None),                              # Saturday: no summary
    (datetime(2026, 3, 30, 6, 30), datetime(2026, 3, 30, 6, 30)),       # summer time: 08:30 CEST is 06:30 UTC
])
def test_the_summary_is_due_from_its_local_time_on_its_days(now, expected):
    spec = DailySummary(at=8 * 3600 + 30 * 60, timezone="Europe/Berlin", days=WEEKDAYS)
    assert latest_slot(spec, now) == expected


def test_late_tickets_come_first_then_the_agents_turn_by_priority():
    now = datetime(2026, 11, 23, 9, 0)
    day = timedelta(days=1)
    tickets = [dict(id=1, status="waiting_customer", priority="urgent", updated_at=now - 9 * day),
               dict(id=2, status="open", priority="normal", updated_at=now - 5 * day),
               dict(id=3, status="open", priority="high", updated_at=now - day),
               dict(id=4, status="new", priority="normal", updated_at=now - 6 * day),
               dict(id=5, status="postponed", priority="low", updated_at=now - day)]
    due = {5: now - timedelta(hours=1), 2: now + day}
    entries = ordered(tickets, due, now)
    assert [e.ticket["id"] for e in entries] == [5, 3, 4, 2, 1]
    assert [e.overdue for e in entries] == [True, False, False, False, False]
    assert entries[3].due_at == now + day


def test_rules_take_a_summary_and_say_what_is_wrong_with_one():
    base = "agents: [{email: a@example.com, name: A, groups: [s]}]\ngroups: {s: {}}\n"
    rules = load_rules_text(base + "business_hours: {timezone: Asia/Tokyo, week: {mon: '09:00-17:00'}}\n"
                                   "daily_summary: {at: '7:05'}\n")
    assert rules.daily_summary == DailySummary(at=7 * 3600 + 5 * 60, timezone="Asia/Tokyo", days=frozenset(range(7)))
    assert load_rules_text(base).daily_summary is None
    with pytest.raises(RulesError) as refused:
        load_rules_text(base + "daily_summary:\n  at: '24:00'\n  timezone: Europe/Berln\n  days: [mon, fry]\n")
    errors = str(refused.value)
    assert "rules.yaml:4:7: daily_summary.at: '24:00' is not a time of day" in errors
    assert "'Europe/Berln' is not a time zone" in errors and "unknown day `fry`" in errors
    with pytest.raises(RulesError, match="daily_summary.at: this key is required"):
        load_rules_text(base + "daily_summary: {days: [mon]}\n")


# ---------------------------------------------------------------- on a desk


RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [support], away: true}
  - {email: dave@example.com, name: Dave, groups: [billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
timers:
  new: {respond_within: 4h}
daily_summary: {at: "08:00"}
"""


@pytest.fixture
def desk(make_app, db_url):
    daily_summary._done.clear()
    yield from open_desk(make_app, db_url, rules=RULES)


def _link(text: str, tag: str, label: str) -> tuple[str, dict]:
    """The mailto link after `label` in the lines under the ticket `tag`: (address, query)."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(tag))
    line = next(line for line in lines[start:] if line.strip().startswith(label))
    url = urlsplit(line.split("mailto:", 1)[1].strip())
    return unquote(url.path), {k: v[0] for k, v in parse_qs(url.query).items()}


def test_each_agent_gets_their_own_list_once_and_acts_through_its_links(desk):
    tickets, assigned = [], []
    for subject in ("Printer on fire", "Scanner jammed", "Fax silent"):
        desk.send(build_mail(CUSTOMER, f"{subject}.\n", subject=subject))
        tickets.append(desk.ticket()["id"])
        if subject != "Fax silent":      # the third waits unassigned
            assigned.append(desk.assign(tickets[-1]))
    first, second, waiting = tickets
    assert assigned == [ALICE, BOB]
    # Yesterday's times: what is queued then is due now, and the mail goes out.
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)

    assert send_daily_summaries(desk.app, day + timedelta(hours=7, minutes=59)) == []   # before 08:00
    # Carol is away; Dave has nothing to hear about: no mail for them.
    assert sorted(send_daily_summaries(desk.app, day + timedelta(hours=9))) == [ALICE, BOB]
    assert send_daily_summaries(desk.app, day + timedelta(hours=10)) == []
    daily_summary._done.clear()            # another process, or a restart: the outbox is the record
    assert send_daily_summaries(desk.app, day + timedelta(hours=11)) == []
    desk.flush()

    summary = [m for m in desk.inbox(ALICE) if m["Subject"].startswith("Your tickets")]
    assert len(summary) == 1 and not desk.inbox(CAROL) and not desk.inbox(DAVE)
    mail = summary[0]
    assert str(mail["Subject"]) == f"Your tickets on {day.date()}: 1 open, 1 waiting for someone"
    # A reply never opens a ticket: it goes to her desk address (#away, #back; tests/test_agent_desk.py).
    assert email.utils.parseaddr(str(mail["Reply-To"]))[1] == desk_address(desk.app.signer, "support@example.com",
                                                                           ALICE)
    assert mail["Auto-Submitted"] == "auto-generated"
    text = body_text(mail)
    assert f"[#{first}] Printer on fire" in text and "Scanner jammed" not in text       # Bob's is not hers
    assert f"[#{waiting}] Fax silent (support, from {CUSTOMER}" in text
    assert "next timer:" in text                                         # the respond-within clock

    # "take it": mail to the waiting ticket's link with the prefilled body assigns it to her.
    address, query = _link(text, f"[#{waiting}]", "take it:")
    assert query["body"] == f"#assign {ALICE}" and query["subject"] == f"Re: [#{waiting}] Fax silent"
    desk.send(build_mail(ALICE, query["body"] + "\n", to=address, subject=query["subject"]))
    assert desk.ticket(waiting)["assignee"] == ALICE
    # "write to it": her words reach the customer, her command applies.
    address, query = _link(text, f"[#{first}]", "write to it:")
    desk.send(build_mail(ALICE, "#status waiting_customer\nWhich model is it?\n", to=address,
                         subject=query["subject"]))
    assert desk.ticket(first)["status"] == "waiting_customer"
    assert "Which model is it?" in body_text(desk.last(CUSTOMER))
    # "its history": the conversation comes back to her.
    address, query = _link(text, f"[#{first}]", "its history:")
    assert query["body"] == "#history"
    desk.send(build_mail(ALICE, query["body"] + "\n", to=address, subject=query["subject"]))
    assert "Which model is it?" in body_text(desk.last(ALICE)) and "History:" in str(desk.last(ALICE)["Subject"])


def test_overdue_tickets_lead_and_say_so(make_app, db_url):
    daily_summary._done.clear()
    for desk in open_desk(make_app, db_url, rules=RULES.replace('"08:00"', '"00:00"')):
        ids, assigned = [], []
        for subject in ("Old one", "Bobs one", "Fresh one"):
            desk.send(build_mail(CUSTOMER, f"{subject}.\n", subject=subject))
            ids.append(desk.ticket()["id"])
            assigned.append(desk.assign(ids[-1]))
        assert assigned == [ALICE, BOB, ALICE]
        late, _, fresh = ids
        now = utcnow()
        with desk.app.engine.begin() as conn:   # the old one's 4h have run out, the fresh one's not
            conn.execute(timers.update().where(timers.c.ticket_id == late).values(due_at=now - timedelta(hours=1)))
        assert ALICE in send_daily_summaries(desk.app, now)
        desk.flush()
        mail = desk.last(ALICE)
        text = body_text(mail).replace("\r\n", "\n")
        assert text.index(f"[#{late}] Old one") < text.index(f"[#{fresh}] Fresh one")
        assert "OVERDUE: its timer ran out at" in text.split("Fresh one")[0]
        assert "OVERDUE" not in text.split("Fresh one")[1]
        assert str(mail["Subject"]).endswith(": 2 open, 1 overdue")


def test_the_sweep_sends_it_when_its_time_has_come(make_app, sqlite_url):
    daily_summary._done.clear()
    for desk in open_desk(make_app, sqlite_url, rules=RULES.replace('"08:00"', '"00:00"')):
        desk.send(build_mail(CUSTOMER, "Help.\n"))
        desk.assign(desk.ticket()["id"])
        sweep_once(desk.app)
        assert [r["recipient"] for r in desk.rows(outbox, template="agent/daily_summary")] == [ALICE]
        sweep_once(desk.app)
        assert len(desk.rows(outbox, template="agent/daily_summary")) == 1


def test_processes_that_sweep_at_once_queue_each_summary_once(make_app, db_url):
    """Every `ticketd run` and `ticketd worker` sweeps: all find the summary due in the same second."""
    apps = [make_app(db_url, rules=RULES.replace('"08:00"', '"00:00"')) for _ in range(4)]
    for desk in open_desk(make_app, db_url, rules=RULES.replace('"08:00"', '"00:00"')):
        desk.send(build_mail(CUSTOMER, "Help.\n"))
        desk.assign(desk.ticket()["id"])
        start = threading.Barrier(len(apps))
        sent: list[list[str]] = []

        def sweep(app, start=start, sent=sent):
            start.wait()
            sent.append(send_daily_summaries(app))

        daily_summary._done.clear()
        threads = [threading.Thread(target=sweep, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        rows = desk.rows(outbox, template="agent/daily_summary")
        assert [r["recipient"] for r in rows] == [ALICE]      # Bob has nothing to hear about
        assert [a for each in sent for a in each] == [ALICE] and len(sent) == len(apps)
