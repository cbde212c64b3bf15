"""A colleague's `#merge` of one of an agent's tickets into another of theirs: the agent is told once."""

from __future__ import annotations

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
# Bob is in billing only: every support ticket goes to Alice.
RULES = MINIMAL_RULES.replace("groups: [support, billing]", "groups: [billing]")


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, rules=RULES)


def test_the_owner_of_both_tickets_hears_of_the_merge_once_on_the_ticket_that_stays(desk):
    """Two mails for one act, the first saying the merged (closed) ticket "stays yours"."""
    first = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    second = desk.open_assigned(CUSTOMER, "The printer is still on fire.\n", ALICE, subject="Printer again")
    before = len(desk.inbox(ALICE))
    desk.send(build_mail(BOB, f"#merge [#{first}]\n", to=desk.agent_address(second, BOB),
                         subject=f"Re: [#{second}] Printer again"))
    assert desk.ticket(second)["merged_into"] == first
    [told] = desk.inbox(ALICE)[before:]
    assert str(told["Subject"]) == f"[#{first}] Bob worked on your ticket: Printer on fire"
    assert f'merged [#{second}] "Printer again"' in " ".join(body_text(told).split())


def test_the_owner_of_the_merged_ticket_alone_is_still_told(desk):
    """Bob merges a ticket of Alice's into his own: Alice, whose ticket closed, hears of it."""
    first = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    desk.send(build_mail(BOB, f"#assign {BOB}\n", to=desk.agent_address(first, BOB),
                         subject=f"Re: [#{first}] Printer on fire"))
    second = desk.open_assigned(CUSTOMER, "The printer is still on fire.\n", ALICE, subject="Printer again")
    before = len(desk.inbox(ALICE))
    desk.send(build_mail(BOB, f"#merge [#{first}]\n", to=desk.agent_address(second, BOB),
                         subject=f"Re: [#{second}] Printer again"))
    [told] = desk.inbox(ALICE)[before:]
    assert str(told["Subject"]) == f"[#{second}] Bob worked on your ticket: Printer again"
    assert f"#merge [#{first}]" in body_text(told)
