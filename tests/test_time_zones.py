"""Dates agents write and read are in their own time zone (rules.yaml `timezone`), the desk's by default."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.desk import body_text, build_mail, open_desk
from tests.test_agent_desk import _to_desk
from ticketd.clock import utcnow
from ticketd.domain.lifecycle import parse_when
from ticketd.rules_file import RulesError, load_rules_text
from ticketd.store.tables import agent_absences

NOW = datetime(2030, 11, 20, 12, 0)
# A year surely ahead and within the 3650d a written date may lie ahead (tests/test_postpone_limits.py).
YEAR = utcnow().year + 2
CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support], timezone: Asia/Tokyo}
  - {email: bob@example.com, name: Bob, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
business_hours: {timezone: Europe/Berlin, week: {mon: "09:00-17:00"}}
"""


@pytest.mark.parametrize("written, zone, stored", [
    ("2030-12-01", "UTC", datetime(2030, 12, 1, 0, 0)),
    ("2030-12-01", "Europe/Berlin", datetime(2030, 11, 30, 23, 0)),       # CET, UTC+1
    ("2030-07-01", "Europe/Berlin", datetime(2030, 6, 30, 22, 0)),        # CEST, UTC+2
    ("2030-12-01 09:00", "America/New_York", datetime(2030, 12, 1, 14, 0)),
    ("2030-12-01T09:00+01:00", "Asia/Tokyo", datetime(2030, 12, 1, 8, 0)),   # an offset says itself
    ("2030-12-01T09:00Z", "Asia/Tokyo", datetime(2030, 12, 1, 9, 0)),
    ("3d", "Asia/Tokyo", datetime(2030, 11, 23, 12, 0)),                  # a duration has no zone
    ("9999-12-31", "Asia/Tokyo", datetime(9999, 12, 30, 15, 0)),
    ("9999-12-31 23:00", "America/New_York", None),                       # past year 9999 in UTC
])
def test_a_written_date_is_read_in_the_writers_zone(written, zone, stored):
    assert parse_when(written, NOW, zone) == stored


def test_an_agents_zone_is_their_own_else_the_desks():
    rules = load_rules_text(RULES)
    assert (rules.zone_of(ALICE), rules.zone_of(BOB), rules.zone_of(CUSTOMER)) == (
        "Asia/Tokyo", "Europe/Berlin", "Europe/Berlin")
    assert load_rules_text(RULES.replace("business_hours", "# ")).zone_of(BOB) == "UTC"
    with pytest.raises(RulesError) as refused:
        load_rules_text(RULES.replace("Asia/Tokyo", "Europe/Atlantis"))
    assert refused.value.errors == ["rules.yaml:2:74: agents[0].timezone: 'Europe/Atlantis' is not a time zone; "
                                    "write e.g. Europe/Berlin"]


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, rules=RULES)


def test_postpone_to_a_date_wakes_at_the_agents_midnight_and_the_customer_reads_the_desks_time(desk):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    desk.reply_to(desk.last(ALICE), ALICE, f"#postpone {YEAR}-01-15\n")
    assert desk.ticket(tid)["postponed_until"] == datetime(YEAR, 1, 14, 15, 0)   # midnight in Tokyo
    # The customer reads the desk's zone (Europe/Berlin): Tokyo's midnight is 16:00 the day before there.
    assert f"postponed until {YEAR}-01-14 16:00 Europe/Berlin" in body_text(desk.last(CUSTOMER))


def test_away_until_a_date_is_the_agents_midnight_and_is_answered_in_their_zone(desk):
    _to_desk(desk, ALICE, f"#away {YEAR}-01-15\n")
    with desk.app.engine.connect() as conn:
        [row] = conn.execute(agent_absences.select()).mappings().all()
    assert row["until"] == datetime(YEAR, 1, 14, 15, 0)
    assert f"{YEAR}-01-15 00:00 Asia/Tokyo" in body_text(desk.last(ALICE))


def test_an_agents_summary_lists_times_in_their_zone(desk):
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    desk.assign(desk.ticket()["id"])
    _to_desk(desk, ALICE, "#summary\n")
    assert "(times in Asia/Tokyo)" in body_text(desk.last(ALICE))
    _to_desk(desk, BOB, "#summary\n")
    assert "(times in Europe/Berlin)" in body_text(desk.last(BOB))


def test_the_conversation_in_an_agents_mail_is_dated_in_their_zone(desk):
    """It said UTC while the same mail's other times were in the agent's zone (docs/rules.md, Time zones)."""
    from zoneinfo import ZoneInfo

    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    [message] = desk.messages(tid)
    at = message["created_at"].replace(tzinfo=ZoneInfo("UTC"))
    heading = f"--- {at.astimezone(ZoneInfo('Asia/Tokyo')):%Y-%m-%d %H:%M} Asia/Tokyo, "
    assert heading in body_text(desk.last(ALICE))
    assert " UTC, " not in body_text(desk.last(ALICE))
