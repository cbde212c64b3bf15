"""`#assign <agent>` naming a colleague at their `max_open` is refused, saying so and what to write instead.

docs/rules.md: `max_open` means no new tickets at this many open ones, and
a route naming such an agent leaves the ticket to its group. A colleague's
`#assign` is no exception, as for an agent who is away; taking a ticket
oneself is (the agent chooses their own load), and so is an admin's
`ticketd tickets assign`.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB, DAVE = "cust@example.org", "alice@example.com", "bob@example.com", "dave@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support], max_open: 1}
  - {email: dave@example.com,  name: Dave,  groups: [billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def _write(desk, sender: str, ticket_id: int, body: str) -> None:
    desk.send(build_mail(sender, body, to=desk.agent_address(ticket_id, sender), subject=f"Re: [#{ticket_id}] Help"))


def test_a_colleague_at_max_open_is_refused_and_the_ticket_stays(desk):
    desk.open_assigned(CUSTOMER, "First.\n", ALICE, subject="Help")
    desk.open_assigned(CUSTOMER, "Second.\n", BOB, subject="Help")   # Bob's max_open, reached
    ticket_id = desk.open_assigned(CUSTOMER, "Third.\n", ALICE, subject="Help")
    before = {who: len(desk.inbox(who)) for who in (ALICE, BOB)}
    _write(desk, ALICE, ticket_id, f"#assign {BOB}\n\nBob, this one is for you.\n")
    assert desk.ticket(ticket_id)["assignee"] == ALICE
    assert desk.events(ticket_id, "commands_rejected")
    [refused] = desk.inbox(ALICE)[before[ALICE]:]
    said = " ".join(body_text(refused).split())
    assert str(refused["Subject"]) == f"[#{ticket_id}] Command not applied: Help"
    assert f"#assign {BOB}: {BOB} has 1 open tickets, the max_open rules.yaml gives them" in said
    assert f"#assign {DAVE}" in said   # an available colleague to name instead
    assert desk.inbox(BOB)[before[BOB]:] == [] and not [m for m in desk.inbox(CUSTOMER) if "Bob, this one" in
                                                         body_text(m)]


def test_an_agent_at_max_open_may_take_a_ticket_themselves(desk):
    desk.open_assigned(CUSTOMER, "First.\n", ALICE, subject="Help")
    desk.open_assigned(CUSTOMER, "Second.\n", BOB, subject="Help")
    ticket_id = desk.open_assigned(CUSTOMER, "Third.\n", ALICE, subject="Help")
    _write(desk, BOB, ticket_id, f"#assign {BOB}\n")
    assert desk.ticket(ticket_id)["assignee"] == BOB
    assert not desk.events(ticket_id, "commands_rejected")


def test_naming_the_agent_at_max_open_who_has_the_ticket_already_changes_nothing_and_says_so(desk):
    desk.open_assigned(CUSTOMER, "First.\n", ALICE, subject="Help")
    ticket_id = desk.open_assigned(CUSTOMER, "Second.\n", BOB, subject="Help")   # Bob's max_open, reached
    before = len(desk.inbox(ALICE))
    _write(desk, ALICE, ticket_id, f"#assign {BOB}\n")
    assert not desk.events(ticket_id, "commands_rejected")
    [told] = desk.inbox(ALICE)[before:]
    assert str(told["Subject"]) == f"[#{ticket_id}] Nothing to change: Help"
    assert f"the ticket is already assigned to {BOB}" in " ".join(body_text(told).split())
