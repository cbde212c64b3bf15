"""`#assign` on a closed ticket is refused, as `ticketd tickets assign` refuses it: a closed ticket waits for nobody.

Handing a closed ticket to an agent told them "Assigned to you" of a ticket
with nothing to do, and to a group with nobody available that it "goes to
the first of them who is available", which never happened. `#status open`
above the `#assign` reopens it first, and the assignment then stands.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.admin import AdminRefused, assign
from ticketd.store.tables import outbox

CUSTOMER, ALICE, BOB, CAROL = "cust@example.org", "alice@example.com", "bob@example.com", "carol@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def _closed_ticket_of_alice(desk) -> int:
    ticket_id = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, subject="Printer")
    desk.send(build_mail(ALICE, "#close\n", to=desk.agent_address(ticket_id, ALICE),
                         subject=f"Re: [#{ticket_id}] Printer"))
    assert desk.ticket(ticket_id)["status"] == "closed"
    return ticket_id


def _agent_writes(desk, ticket_id: int, body: str) -> None:
    desk.send(build_mail(ALICE, body, to=desk.agent_address(ticket_id, ALICE), subject=f"Re: [#{ticket_id}] Printer"))


@pytest.mark.parametrize("target", [BOB, "support"])
def test_assign_on_a_closed_ticket_is_refused_with_how_to_reopen_it(desk, target):
    ticket_id = _closed_ticket_of_alice(desk)
    bob_had, alice_had = len(desk.inbox(BOB)), len(desk.inbox(ALICE))

    _agent_writes(desk, ticket_id, f"#assign {target}\n")

    ticket = desk.ticket(ticket_id)
    assert (ticket["status"], ticket["assignee"]) == ("closed", ALICE)
    assert desk.events(ticket_id, "assigned")[1:] == []   # only the assignment before it closed
    [told] = desk.inbox(ALICE)[alice_had:]
    said = " ".join(body_text(told).split())
    assert f"#assign {target}: ticket [#{ticket_id}] is closed" in said and "#status open" in said
    assert [r["template"] for r in desk.rows(outbox, recipient=ALICE)][-1] == "agent/command_rejected"
    assert desk.inbox(BOB)[bob_had:] == []


def test_assign_to_a_group_with_nobody_available_on_a_closed_ticket_says_no_wait(desk):
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", subject="Printer"))
    ticket_id = desk.ticket()["id"]
    assert desk.ticket(ticket_id)["assignee"] is None   # its assignment job has not run yet
    _agent_writes(desk, ticket_id, "#close\n")   # closed with nobody on it

    _agent_writes(desk, ticket_id, "#assign billing\n")

    ticket = desk.ticket(ticket_id)
    assert (ticket["status"], ticket["assignee"], ticket["group_name"]) == ("closed", None, "support")
    templates = [r["template"] for r in desk.rows(outbox, recipient=ALICE)]
    assert "agent/assign_waiting" not in templates and templates[-1] == "agent/command_rejected"


def test_status_open_above_assign_reopens_the_ticket_and_gives_it(desk):
    ticket_id = _closed_ticket_of_alice(desk)

    _agent_writes(desk, ticket_id, "#status open\n#assign bob@example.com\n")

    ticket = desk.ticket(ticket_id)
    assert (ticket["status"], ticket["assignee"]) == ("open", BOB)


def test_close_with_assign_is_refused_too(desk):
    ticket_id = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, subject="Printer")
    status = desk.ticket(ticket_id)["status"]
    alice_had = len(desk.inbox(ALICE))

    _agent_writes(desk, ticket_id, "#close\n#assign bob@example.com\n")

    ticket = desk.ticket(ticket_id)
    assert status != "closed" and (ticket["status"], ticket["assignee"]) == (status, ALICE)
    [told] = desk.inbox(ALICE)[alice_had:]
    assert "#close closes the ticket, and a closed ticket waits for nobody" in " ".join(body_text(told).split())


def test_the_command_line_refuses_it_the_same_way(desk):
    ticket_id = _closed_ticket_of_alice(desk)

    closed = rf"ticket \[#{ticket_id}\] is closed: it waits for nobody; .*#status open"
    with pytest.raises(AdminRefused, match=closed):
        assign(desk.app, ticket_id, BOB)
    assert desk.ticket(ticket_id)["assignee"] == ALICE
