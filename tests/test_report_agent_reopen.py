"""`ticketd report`'s reopened count: a closed ticket an agent opens again by `#status` is reopened too."""

from __future__ import annotations

import json

import pytest

from tests.cli import cli_ok
from tests.conftest import write_config
from tests.desk import build_mail, open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _agent_mail(desk, tid: int, body: str) -> None:
    desk.send(build_mail(ALICE, body, to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer on fire"))


def _reopened(tmp_path, db_url) -> int:
    figures = json.loads(cli_ok(write_config(tmp_path, db_url), "report", "--days", "1", "--json"))
    return figures["tickets"]["reopened"]


def test_an_agent_reopening_a_closed_ticket_counts_as_reopened(desk, tmp_path, db_url):
    tid = desk.open_assigned(CUSTOMER, "It is on fire.\n", ALICE)
    _agent_mail(desk, tid, "#close\n\nFixed, I think.\n")
    assert desk.ticket(tid)["status"] == "closed"
    assert _reopened(tmp_path, db_url) == 0

    # The customer phoned: it is not fixed. The agent opens the ticket again.
    _agent_mail(desk, tid, "#status open\n")
    assert desk.ticket(tid)["status"] == "open"
    assert _reopened(tmp_path, db_url) == 1


def test_a_status_change_between_open_statuses_is_no_reopening(desk, tmp_path, db_url):
    tid = desk.open_assigned(CUSTOMER, "It is on fire.\n", ALICE)
    _agent_mail(desk, tid, "#status waiting_customer\n\nWhich model is it?\n")
    _agent_mail(desk, tid, "#status open\n")
    assert desk.ticket(tid)["status"] == "open"
    assert _reopened(tmp_path, db_url) == 0
