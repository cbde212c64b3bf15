"""What a route sets on a new ticket is in its history: from what to what, and which route (PRODUCT.md)."""

from __future__ import annotations

import json

import pytest

from tests.cli import cli_ok
from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk

RULES = MINIMAL_RULES.replace(
    "then: {group: billing, priority: high}",
    "then: {group: billing, priority: high, type: question, tags: [money, invoice]}")


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, rules=RULES)


def test_priority_type_and_tags_a_route_sets_are_events_naming_the_route(desk, tmp_path):
    desk.send(build_mail("cust@example.org", "Type: bug\n\nI was charged twice.\n", subject="Invoice 42 wrong"))
    ticket = desk.ticket()
    assert (ticket["priority"], ticket["type"], ticket["group_name"]) == ("high", "question", "billing")
    changes = [(e["actor"], e["kind"], e["from_value"], e["to_value"], e["reason"])
               for e in desk.events(ticket["id"]) if e["kind"] in ("priority", "type", "tags")]
    by_route = "routes: invoices go to billing"
    assert changes == [("system:rules", "priority", "normal", "high", by_route),
                       ("system:rules", "type", "bug", "question", by_route),     # over the customer's key fact
                       ("system:rules", "tags", None, "money, invoice", by_route)]
    shown = json.loads(cli_ok(tmp_path / "ticketd.yaml", "tickets", "show", str(ticket["id"]), "--json"))
    assert [e["kind"] for e in shown["events"]][:6] == ["created", "key_facts", "routed", "priority", "type", "tags"]


def test_a_route_that_changes_nothing_adds_no_event(desk):
    desk.send(build_mail("cust@example.org", "It is on fire.\n"))          # the catch-all: a group, nothing else
    ticket = desk.ticket()
    assert [e["kind"] for e in desk.events(ticket["id"]) if e["kind"] in ("priority", "type", "tags")] == []
