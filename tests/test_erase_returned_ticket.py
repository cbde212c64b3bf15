"""`ticketd forget` gives another customer's merged ticket back as it was: its status and timers, tags and agents."""

from __future__ import annotations

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.erase import forget
from ticketd.merge import merge
from ticketd.store import tables as t
from ticketd.store.tickets import update_ticket

TAGGING_RULES = MINIMAL_RULES.replace("then: {group: support}", "then: {group: support, tags: [vip]}")
ANN, BOB, DAVE = "ann@example.org", "bob@example.org", "dave@example.org"
ALICE, BOB_AGENT = "alice@example.com", "bob@example.com"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=TAGGING_RULES)


def _merged_pair(desk) -> tuple[int, int]:
    """Ann's ticket (Alice's) and Bob's (agent Bob's, tagged, Dave following), Bob's merged into Ann's."""
    anns = desk.open_assigned(ANN, "Ann's printer is on fire.\n", ALICE, subject="Printer on fire")
    bobs = desk.open_assigned(BOB, "Bob's printer smokes.\n", BOB_AGENT, subject="Printer outage", cc=DAVE)
    merge(desk.app, bobs, anns)
    assert desk.ticket(bobs)["status"] == "closed" and desk.rows(t.ticket_tags, ticket_id=bobs) == []
    return anns, bobs


def _forget(desk, address: str):
    return forget(desk.app.engine, desk.app.settings.attachments_dir, address, "`ticketd forget`", app=desk.app)


def test_the_ticket_given_back_is_worked_again_as_before_its_merge(desk):
    anns, bobs = _merged_pair(desk)

    assert _forget(desk, ANN).tickets == [anns]

    bob = desk.ticket(bobs)
    # Nobody answered Bob yet: his ticket waits for an answer again, not closed by a merge that is undone.
    assert (bob["status"], bob["closed_at"], bob["merged_into"]) == ("new", None, None)
    armed = [(r["kind"], r["status"]) for r in desk.rows(t.timers, ticket_id=bobs) if r["state"] == "armed"]
    assert armed == [("respond", "new")]
    assert [r["tag"] for r in desk.rows(t.ticket_tags, ticket_id=bobs)] == ["vip"]
    assert {p["email"]: p["role"] for p in desk.rows(t.participants, ticket_id=bobs)} == {
        BOB: "requester", DAVE: "follower", BOB_AGENT: "agent"}
    [reopened] = [e for e in desk.events(bobs, "status") if e["to_value"] == "new"]
    assert reopened["from_value"] == "closed" and f"[#{anns}]" in reopened["reason"]
    # Alice worked only Ann's ticket: she does not join Bob's.
    assert ALICE not in {p["email"] for p in desk.rows(t.participants, ticket_id=bobs)}


def test_a_ticket_given_back_from_a_closed_ticket_stays_closed(desk):
    anns, bobs = _merged_pair(desk)
    with desk.app.engine.begin() as conn:
        update_ticket(conn, anns, utcnow(), status="closed", closed_at=utcnow())

    _forget(desk, ANN)

    # Its problem was solved with the ticket it joined: it comes back closed, with no timer, but its tags.
    assert desk.ticket(bobs)["status"] == "closed"
    assert [r for r in desk.rows(t.timers, ticket_id=bobs) if r["state"] == "armed"] == []
    assert [r["tag"] for r in desk.rows(t.ticket_tags, ticket_id=bobs)] == ["vip"]
    assert [m["text"] for m in desk.messages(bobs)] == ["Bob's printer smokes."]
    desk.send(build_mail(BOB, "Still smoking.\n", subject=f"Re: [#{bobs}] Printer outage"))
    assert desk.messages(bobs)[-1]["text"] == "Still smoking."
