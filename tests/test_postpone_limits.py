"""A date an agent writes (`#postpone`, `#dev`, `#away`) may lie at most 3650d (10 years) ahead, and says so.

`#postpone 99999d` was answered "not a duration" although it is one, only
too long. The bound is rules.yaml's for its timers (ticketd.rules_file,
docs/rules.md: "at most 3650d"), far inside what a datetime holds; an ISO date
past it, or past the year 9999, gets the same answer.
"""

from __future__ import annotations

import json
import smtplib
from datetime import datetime, timedelta

import pytest

from tests.cli import cli_ok
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import Sink, customer_mail, wait_until
from ticketd.domain.absence import DeskRefusal, DeskRequest, read_desk_mail
from ticketd.domain.commands import plan_commands, read_agent_reply
from ticketd.domain.timers import FURTHEST_AHEAD_DAYS
from ticketd.rules_file import MAX_DURATION_DAYS, parse_duration

NOW = datetime(2030, 6, 1, 12, 0)
LIMIT = "at most 3650d (10 years) ahead"
TOKYO_LATEST = "up to 2040-05-29 21:00 Asia/Tokyo"   # NOW + 3650d (three leap days on the way), read in Tokyo


def _plan(text: str, zone: str = "Asia/Tokyo"):
    return plan_commands(read_agent_reply(text), now=NOW, agents=["alice@example.com"], groups=["support"],
                         zone=zone)


@pytest.mark.parametrize("command", [
    "#postpone 99999d",                       # five digits: was "not a duration"
    "#postpone 3651d",
    "#postpone 9999w",                        # four digits, read as a duration before, 191 years on
    "#postpone 3650d 1s",
    "#postpone 99999999999999999999999999999999999999999999d",
    "#postpone 2040-05-30",                   # ISO dates past the bound
    "#postpone 2099-01-15 09:00",
    "#postpone 9999-12-31",
    "#postpone 9999-12-31T23:00-05:00",       # past the year 9999 in UTC
    "#dev carol PRJ-1 99999d",
    "#dev carol PRJ-1 2041-01-01",
])
def test_a_time_past_the_bound_is_refused_naming_it(command):
    planned = _plan(command)
    assert not planned.ok and planned.status is None
    [error] = planned.errors
    assert error.startswith(command + ": ") and "is too far ahead" in error
    assert LIMIT in error and TOKYO_LATEST in error
    assert "not a duration" not in error and "not an ISO date" not in error


@pytest.mark.parametrize("command, until", [
    ("#postpone 3650d", NOW + timedelta(days=3650)),
    ("#postpone 99999s", NOW + timedelta(seconds=99999)),   # five digits, 27 hours: a duration like any
    ("#postpone 2040-05-29", datetime(2040, 5, 28, 15, 0)),  # Tokyo's midnight, within the bound
])
def test_a_time_within_the_bound_is_taken(command, until):
    planned = _plan(command)
    assert planned.ok, planned.errors
    assert planned.postponed_until == until


def test_the_bound_is_rules_yamls_longest_duration():
    """One bound (docs/rules.md "at most 3650d"): rules.yaml takes up to the furthest ahead an agent's date lies."""
    assert MAX_DURATION_DAYS is FURTHEST_AHEAD_DAYS and FURTHEST_AHEAD_DAYS == 3650
    assert parse_duration(f"{FURTHEST_AHEAD_DAYS}d") == FURTHEST_AHEAD_DAYS * 86400
    with pytest.raises(ValueError, match=f"longer than {FURTHEST_AHEAD_DAYS}d"):
        parse_duration(f"{FURTHEST_AHEAD_DAYS + 1}d")


def test_away_past_the_bound_is_refused_the_same_way():
    refused = read_desk_mail("#away 99999d\n", NOW, "UTC")
    assert isinstance(refused, DeskRefusal) and refused.line == "#away 99999d"
    assert "is too far ahead" in refused.error and LIMIT in refused.error and "up to 2040-05-29 12:00 UTC" in refused.error
    assert read_desk_mail("#away 3650d\n", NOW, "UTC") == DeskRequest("away", NOW + timedelta(days=3650))


# ---------------------------------------------------------------- through the daemon

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support], timezone: Asia/Tokyo}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""


def test_postpone_too_far_is_answered_with_the_bound_and_the_ticket_stays(tmp_path, sqlite_url):
    sink = Sink(free_port()).start()
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=RULES, smtp_port=port, outbound_port=sink.port)
    daemon = DaemonProcess(config).start()

    def to_alice(subject: str) -> list:
        return [m.message for m in sink.messages
                if "alice@example.com" in m.rcpt_tos and str(m.message["Subject"]).startswith(subject)]

    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(customer_mail(subject="Printer on fire"))
        [notice] = wait_until(lambda: to_alice("[#1] Assigned to you"), timeout=20)
        for n, command in enumerate(("#postpone 99999d", "#dev carol PRJ-1 2099-01-15"), start=1):
            reply = build_mail("alice@example.com", f"{command}\n", to=str(notice["Reply-To"]),
                               subject="Re: " + str(notice["Subject"]), in_reply_to=str(notice["Message-ID"]))
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.send_message(reply)
            refused = wait_until(lambda n=n: to_alice("[#1] Command not applied")[n - 1:], timeout=20)[-1]
            said = " ".join(refused.get_body(("plain",)).get_content().split())
            assert f"{command}: " in said and "is too far ahead" in said and LIMIT in said
            assert "Asia/Tokyo" in said and "not a duration" not in said
        ticket = json.loads(cli_ok(config, "tickets", "show", "1", "--json"))
        assert (ticket["status"], ticket["postponed_until"], ticket["dev"]) == ("new", None, None)
    finally:
        daemon.stop()
        sink.stop()
