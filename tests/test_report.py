"""`ticketd report`: the desk's figures over a window, computed (pure) and read from both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.cli import cli_ok
from tests.conftest import write_config
from ticketd.clock import utcnow
from ticketd.domain.report import Rating, Reaction, TicketTimes, build_report, human_duration, percentile
from ticketd.store import tickets as store

T0 = datetime(2026, 11, 1, 12, 0)
HOUR = timedelta(hours=1)


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([4, 1, 3, 2], 0.5) == 2
    assert percentile(list(range(1, 11)), 0.9) == 9
    assert percentile(list(range(1, 11)), 1.0) == 10


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0, "0s"), (39, "39s"), (59.9, "59s"), (60, "1m 00s"), (100, "1m 40s"), (311, "5m 11s"),
    (45 * 60, "45m 00s"), (3599, "59m 59s"), (3600, "1h 00m"), (2 * 3600 + 5 * 60 + 7, "2h 05m"),
    (3 * 3600 + 20 * 60, "3h 20m"), (2 * 86400 + 4 * 3600 + 59, "2d 4h")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_report_counts_unanswered_apart_and_groups_by_current_assignee():
    created = [TicketTimes(1, "a@x", T0, T0 + 1 * HOUR, None), TicketTimes(2, "a@x", T0, T0 + 3 * HOUR, T0 + 5 * HOUR),
               TicketTimes(3, "b@x", T0, None, None), TicketTimes(4, None, T0, T0 + 2 * HOUR, None)]
    closed = [created[1], TicketTimes(9, "b@x", T0 - 100 * HOUR, T0 - 99 * HOUR, T0 + 20 * HOUR)]
    report = build_report(
        T0 - 24 * HOUR, T0 + 24 * HOUR, created=created, closed=closed,
        open_by_assignee={"a@x": 1, "b@x": 1, None: 1}, event_kinds={"timer_breached": 2, "reopened": 1, "rejected": 1},
        ratings=[Rating("a@x", 5, 4, 5), Rating("a@x", 3, 4, 4)], reactions=[Reaction("a@x", "like"),
                                                                            Reaction("b@x", "dislike")],
        agents=["a@x", "b@x", "c@x"])
    assert report["tickets"] == {"created": 4, "closed": 2, "open_now": 3, "unassigned_now": 1, "reopened": 2,
                                 "timer_breaches": 2}
    assert report["first_response"] == {"count": 3, "median_seconds": 7200, "p90_seconds": 10800,
                                        "not_answered_yet": 1}
    assert report["resolution"] == {"count": 2, "median_seconds": 5 * 3600, "p90_seconds": 120 * 3600}
    assert report["ratings"] == {"count": 2, "usefulness": 4.0, "speed": 4.0, "politeness": 4.5}
    a, b, c = (report["agents"][name] for name in ("a@x", "b@x", "c@x"))
    assert (a["open_now"], a["closed"], a["first_response"]["median_seconds"]) == (1, 1, 3600)
    assert a["ratings"]["usefulness"] == 4.0 and a["reactions"] == {"like": 1, "dislike": 0}
    assert (b["closed"], b["resolution"]["median_seconds"], b["first_response"]["count"]) == (1, 120 * 3600, 0)
    assert c == {"open_now": 0, "closed": 0, "first_response": {"count": 0, "median_seconds": None, "p90_seconds": None},
                 "resolution": {"count": 0, "median_seconds": None, "p90_seconds": None},
                 "ratings": {"count": 0, "usefulness": None, "speed": None, "politeness": None},
                 "reactions": {"like": 0, "dislike": 0}}
    assert report["agents"]["(unassigned)"]["open_now"] == 1


def test_report_reads_the_window_from_the_database(tmp_path, make_app, db_url):
    app = make_app(db_url)
    config = write_config(tmp_path, db_url)
    now = utcnow()
    old = now - timedelta(days=40)
    with app.engine.begin() as conn:
        def ticket(created, **fields):
            return store.create_ticket(conn, subject="t", status=fields.pop("status", "open"),
                                       requester="cust@example.org", created_at=created, updated_at=created, **fields)
        fast = ticket(now - 10 * HOUR, assignee="alice@example.com", first_response_at=now - 9 * HOUR,
                      status="closed", closed_at=now - 5 * HOUR)
        ticket(now - 8 * HOUR, assignee="bob@example.com", first_response_at=now - 5 * HOUR)
        ticket(now - 2 * HOUR)                                           # not answered yet, unassigned
        ticket(now - 3 * HOUR, status="closed", closed_at=now - HOUR, merged_into=fast)   # counted in `fast`
        ticket(old, assignee="alice@example.com", first_response_at=old + HOUR,
               status="closed", closed_at=old + 2 * HOUR)                # outside the window
        reply = store.add_message(conn, ticket_id=fast, direction="in", from_addr="alice@example.com", text="Fixed.",
                                  full_text="Fixed.", author_role="agent", created_at=now - 9 * HOUR)
        store.add_reaction(conn, reply, "like", "cust@example.org", now - 8 * HOUR)
        store.add_rating(conn, fast, 5, 4, 5, None, now - 4 * HOUR)
        store.add_event(conn, fast, now - 6 * HOUR, "system:timers", "timer_breached")
        store.add_event(conn, fast, old, "system:timers", "timer_breached")   # outside the window

    figures = json.loads(cli_ok(config, "report", "--days", "30", "--json"))
    assert figures["days"] == 30 and figures["since"].endswith("Z")
    assert figures["tickets"] == {"created": 3, "closed": 1, "open_now": 2, "unassigned_now": 1, "reopened": 0,
                                  "timer_breaches": 1}
    assert figures["first_response"] == {"count": 2, "median_seconds": 3600, "p90_seconds": 3 * 3600,
                                         "not_answered_yet": 1}
    assert figures["resolution"] == {"count": 1, "median_seconds": 5 * 3600, "p90_seconds": 5 * 3600}
    alice = figures["agents"]["alice@example.com"]
    assert (alice["closed"], alice["ratings"]["count"], alice["reactions"]["like"]) == (1, 1, 1)
    assert figures["agents"]["bob@example.com"]["open_now"] == 1

    text = cli_ok(config, "report")
    assert "first reply  median 1h 00m, 90% within 3h 00m (2 answered, 1 not yet)" in text
    assert "ratings      1 (usefulness/speed/politeness 5.0/4.0/5.0); reactions 1 like, 0 dislike" in text
    assert any(line.startswith("alice@example.com") for line in text.splitlines())


def test_the_text_shows_seconds_below_a_minute(tmp_path, make_app, sqlite_url):
    """A first reply after 39 s is no `0m`, which reads as an instant answer."""
    app = make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    now = utcnow()
    with app.engine.begin() as conn:
        for created, answered, closed in ((now - 2 * HOUR, 39, 100), (now - HOUR, None, 311)):
            store.create_ticket(conn, subject="t", status="closed", requester="cust@example.org",
                                assignee="alice@example.com", created_at=created, updated_at=created,
                                first_response_at=created + timedelta(seconds=answered) if answered else None,
                                closed_at=created + timedelta(seconds=closed))
    text = cli_ok(config, "report")
    assert "first reply  median 39s, 90% within 39s (1 answered, 1 not yet)" in text
    assert "resolution   median 1m 40s, 90% within 5m 11s (2 closed)" in text
    [alice] = [line for line in text.splitlines() if line.startswith("alice@example.com")]
    assert alice.split()[3:7] == ["39s", "1m", "40s", "-"]
