"""A duration an agent writes may spell its unit out: `#postpone 3 days`, `2 weeks`, `1 hour`, `30 minutes`.

`#postpone 3 days` was refused as "not a duration"; only `3d` and ISO dates
were taken. The same reader serves `#away` (the desk address) and `#dev`'s
due date (one word there: `#dev carol PRJ-1 2weeks`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.absence import DeskRequest, read_desk_mail
from ticketd.domain.commands import plan_commands, read_agent_reply
from ticketd.domain.timers import TooFarAhead, read_ahead

NOW = datetime(2030, 6, 1, 12, 0)
ALICE = "alice@example.com"


@pytest.mark.parametrize("written, ahead", [
    ("3 days", timedelta(days=3)),
    ("3days", timedelta(days=3)),
    ("1 day", timedelta(days=1)),
    ("2 weeks", timedelta(weeks=2)),
    ("1 Week", timedelta(weeks=1)),
    ("2w", timedelta(weeks=2)),
    ("1 hour", timedelta(hours=1)),
    ("12 hours", timedelta(hours=12)),
    ("30 minutes", timedelta(minutes=30)),
    ("1 minute", timedelta(minutes=1)),
    ("45 seconds", timedelta(seconds=45)),
    ("1 hour 30 minutes", timedelta(hours=1, minutes=30)),
    ("3d", timedelta(days=3)),
    ("1h30m", timedelta(hours=1, minutes=30)),
])
def test_a_spelled_out_unit_is_a_duration(written, ahead):
    assert read_ahead(written, NOW) == NOW + ahead


@pytest.mark.parametrize("written", ["3 months", "3 dayz", "days", "3 days ago", "three days", "3 d a y s"])
def test_what_is_no_duration_stays_none(written):
    assert read_ahead(written, NOW) is None


def test_a_spelled_out_duration_is_bounded_as_any():
    with pytest.raises(TooFarAhead):
        read_ahead("99999 days", NOW)
    assert read_ahead("3650 days", NOW) == NOW + timedelta(days=3650)


def test_postpone_away_and_dev_read_spelled_out_units():
    planned = plan_commands(read_agent_reply("#postpone 3 days\n"), now=NOW, agents=[ALICE], groups=["support"],
                            zone="UTC")
    assert planned.ok, planned.errors
    assert planned.postponed_until == NOW + timedelta(days=3)
    planned = plan_commands(read_agent_reply("#dev carol PRJ-1 2weeks\n"), now=NOW, agents=[ALICE],
                            groups=["support"], zone="UTC")
    assert planned.ok, planned.errors
    assert read_desk_mail("#away 2 weeks\n", NOW, "UTC") == DeskRequest("away", NOW + timedelta(weeks=2))


@pytest.mark.parametrize("written, ahead", [("1 hour 30 minutes", timedelta(hours=1, minutes=30)),
                                             ("1 day 2 hours", timedelta(days=1, hours=2))])
def test_a_duration_of_more_than_two_words_is_one_too(written, ahead):
    """`#postpone 1 day 2 hours` was "not a duration": only one or two words reached the reader."""
    planned = plan_commands(read_agent_reply(f"#postpone {written}\n"), now=NOW, agents=[ALICE],
                            groups=["support"], zone="UTC")
    assert planned.ok, planned.errors
    assert planned.postponed_until == NOW + ahead
    assert read_desk_mail(f"#away {written}\n", NOW, "UTC") == DeskRequest("away", NOW + ahead)
    refused = plan_commands(read_agent_reply("#postpone 3d and call me\n"), now=NOW, agents=[ALICE],
                            groups=["support"], zone="UTC")
    assert refused.errors == ("#postpone 3d and call me: '3d and call me' is not a duration or an ISO date.",)


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def test_an_agent_postpones_by_mail_for_3_days(desk):
    tid = desk.open_assigned("cust@example.org", "The printer is on fire.\n", ALICE)
    before = utcnow()
    desk.send(build_mail(ALICE, "#postpone 3 days\nI will look again then.\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Re: [#{tid}] Printer on fire"))
    ticket = desk.ticket(tid)
    assert ticket["status"] == "postponed"
    assert before + timedelta(days=3) <= ticket["postponed_until"] <= utcnow() + timedelta(days=3)
    assert not desk.events(tid, "commands_rejected")
