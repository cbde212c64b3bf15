"""A colleague's `#note` with a change (`#status`, `#assign`, `#priority`): the ticket's agent gets one mail.

The note's own mail and the "worked on your ticket" mail were two mails about
one act; the one left carries the note's words and the changes, and a reply
to it is a note too, as a reply to a note's mail is.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB, DAVE = "cust@example.org", "alice@example.com", "bob@example.com", "dave@example.com"
# Alice gets every support ticket; Bob and Dave work in billing.
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [billing]}
  - {email: dave@example.com,  name: Dave,  groups: [billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""
NOTE = "The customer's contract ends in May; keep it short."


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def _bob_writes(desk, ticket_id: int, body: str) -> None:
    desk.send(build_mail(BOB, body, to=desk.agent_address(ticket_id, BOB), subject=f"Re: [#{ticket_id}] Printer"))


def test_a_note_with_a_status_reaches_the_assignee_once(desk):
    ticket_id = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, subject="Printer")
    before = len(desk.inbox(ALICE))
    _bob_writes(desk, ticket_id, f"#note\n#status waiting_customer\n#priority high\n\n{NOTE}\n")
    assert desk.ticket(ticket_id)["status"] == "waiting_customer" and desk.ticket(ticket_id)["priority"] == "high"
    [told] = desk.inbox(ALICE)[before:]
    said = " ".join(body_text(told).split())
    assert str(told["Subject"]) == f"[#{ticket_id}] Bob worked on your ticket: Printer"
    assert NOTE in said and "#status waiting_customer" in said and "#priority high" in said
    # It shows a note: answered, it stays with the agents, as the note's own mail would.
    desk.reply_to(told, ALICE, "Agreed, I will call them.\n")
    assert not [m for m in desk.inbox(CUSTOMER) if "I will call them" in body_text(m)]
    assert desk.events(ticket_id, "internal_note")[-1]["actor"] == ALICE


def test_a_note_that_gives_the_ticket_away_tells_its_agent_once_and_the_new_one_once(desk):
    ticket_id = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, subject="Printer")
    before = {who: len(desk.inbox(who)) for who in (ALICE, DAVE)}
    _bob_writes(desk, ticket_id, f"#note\n#assign {DAVE}\n\n{NOTE}\n")
    assert desk.ticket(ticket_id)["assignee"] == DAVE
    [told] = desk.inbox(ALICE)[before[ALICE]:]
    assert str(told["Subject"]) == f"[#{ticket_id}] Bob gave your ticket to Dave: Printer"
    assert NOTE in " ".join(body_text(told).split())
    [given] = desk.inbox(DAVE)[before[DAVE]:]
    assert str(given["Subject"]).startswith(f"[#{ticket_id}] Assigned to you")


def test_a_note_alone_is_still_the_notes_own_mail(desk):
    ticket_id = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, subject="Printer")
    before = len(desk.inbox(ALICE))
    _bob_writes(desk, ticket_id, f"#note\n\n{NOTE}\n")
    [told] = desk.inbox(ALICE)[before:]
    assert str(told["Subject"]) == f"[#{ticket_id}] Internal note: Printer"
