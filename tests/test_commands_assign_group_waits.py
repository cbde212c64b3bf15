"""`#assign <group>` on an unassigned ticket when nobody in the group can take it: the agent is told it waits.

docs/rules.md: when nobody is available the ticket waits unassigned in its
group and is given out as soon as someone is. The group changes as asked;
the agent who wrote hears that nobody has it yet, and why, rather than
believe a colleague is on it.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.store.tables import outbox

CUSTOMER, ALICE, BOB, CAROL = "cust@example.org", "alice@example.com", "bob@example.com", "carol@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [billing], max_open: 1}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - if: {subject: "(?i)invoice"}
    then: {group: billing}
  - then: {group: support}
"""


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def test_a_group_with_nobody_available_takes_the_ticket_and_the_agent_hears_it_waits(desk):
    # Bob's one open ticket fills his max_open; Carol is away.
    desk.open_assigned(CUSTOMER, "Where is my invoice?\n", BOB, subject="Invoice")
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", subject="Printer"))
    ticket_id = desk.ticket()["id"]
    assert desk.ticket(ticket_id)["assignee"] is None   # its assignment job has not run yet
    before = len(desk.inbox(ALICE))
    desk.send(build_mail(ALICE, "#assign billing\n", to=desk.agent_address(ticket_id, ALICE),
                         subject=f"Re: [#{ticket_id}] Printer"))
    ticket = desk.ticket(ticket_id)
    assert ticket["group_name"] == "billing" and ticket["assignee"] is None
    [told] = desk.inbox(ALICE)[before:]
    said = " ".join(body_text(told).split())
    assert "#assign billing" in said and "nobody in billing can take it now" in said
    assert f"{CAROL} is away" in said and f"{BOB} has 1 open tickets (max_open 1)" in said
    assert "waits unassigned in billing" in said
    assert str(told["Subject"]) == f"[#{ticket_id}] Waiting for an agent: Printer"
    assert [r["template"] for r in desk.rows(outbox, recipient=ALICE)][-1] == "agent/assign_waiting"
    assert not desk.inbox(BOB)[1:] and not desk.inbox(CAROL)


def test_a_group_with_someone_available_sends_no_such_word(desk):
    desk.send(build_mail(CUSTOMER, "Where is my invoice?\n", subject="Invoice"))
    ticket_id = desk.ticket()["id"]
    before = len(desk.inbox(ALICE))
    desk.send(build_mail(ALICE, "#assign billing\n", to=desk.agent_address(ticket_id, ALICE),
                         subject=f"Re: [#{ticket_id}] Invoice"))
    assert desk.ticket(ticket_id)["assignee"] == BOB
    assert desk.inbox(ALICE)[before:] == []
