"""`ticketd forget` of a customer whose ticket another customer's ticket was merged into: that one keeps its words."""

from __future__ import annotations

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.erase import forget
from ticketd.merge import merge
from ticketd.store import tables as t
from ticketd.store.files import attachment_path
from ticketd.store.tickets import add_rating, add_reaction
from ticketd.views import show_ticket

ANN, BOB, CAROL = "ann@example.org", "bob@example.org", "carol@example.org"
BOBS_LOG = b"bob's smoke log, which nobody else sent"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=MINIMAL_RULES)


def _open(desk, msg) -> int:
    desk.send(msg)
    return desk.ticket()["id"]


def _forget(desk, address: str):
    return forget(desk.app.engine, desk.app.settings.attachments_dir, address, "`ticketd forget`")


def test_forgetting_the_target_customer_gives_the_merged_ticket_its_conversation_back(desk):
    anns = _open(desk, build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    bobs_mail = build_mail(BOB, "Bob's printer is smoking too.\n", subject="Printer outage", cc=CAROL)
    bobs_mail.add_attachment(BOBS_LOG, maintype="text", subtype="plain", filename="smoke.log")
    bobs = _open(desk, bobs_mail)
    [bobs_message] = desk.messages(bobs)
    with desk.app.engine.begin() as conn:
        add_rating(conn, bobs, 4, 4, 4, bobs_message["id"], utcnow())
        add_reaction(conn, bobs_message["id"], "like", BOB, utcnow())
    merge(desk.app, bobs, anns)
    # Carol, following Ann's ticket since the merge, writes on it: her words are on Ann's ticket only.
    desk.send(build_mail(CAROL, "Carol adds: the fire alarm went off.\n", subject=f"Re: [#{anns}] Printer on fire"))
    assert [m["ticket_id"] for m in desk.rows(t.messages)] == [anns, anns, anns]

    erased = _forget(desk, ANN)

    assert erased.tickets == [anns] and desk.rows(t.tickets, id=anns) == []
    # Bob asked for nothing: his own ticket reads as it did before the merge.
    [back] = desk.messages(bobs)
    assert (back["id"], back["from_addr"], back["text"]) == (bobs_message["id"], BOB, "Bob's printer is smoking too.")
    shown = show_ticket(desk.app.engine, bobs)
    assert (shown["merged_into"], shown["requester"], shown["followers"]) == (None, BOB, [CAROL])
    [attachment] = [a for m in shown["messages"] if m["direction"] == "in" for a in m["attachments"]]
    assert attachment_path(desk.app.settings.attachments_dir, attachment["sha256"]).read_bytes() == BOBS_LOG
    assert [r["ticket_id"] for r in desk.rows(t.ratings)] == [bobs]
    assert [r["message_id"] for r in desk.reactions()] == [bobs_message["id"]]
    [raw] = desk.rows(t.raw_mail, id=back["raw_mail_id"])
    assert (raw["state"], raw["ticket_id"], raw["size"] > 0) == ("done", bobs, True)
    assert any("is back here" in (e["reason"] or "") for e in desk.events(bobs, "unmerged"))
    # Words written on Ann's own ticket go with it (README: every ticket that person opened), Carol's too.
    assert [m["ticket_id"] for m in desk.rows(t.messages)] == [bobs]
    # Nothing of Ann is left anywhere on Bob's ticket.
    assert ANN not in repr(show_ticket(desk.app.engine, bobs)).lower()

    # Bob's reply to the acknowledgement of his own ticket threads there, and the agents' answers reach him.
    desk.reply_to(desk.inbox(BOB)[0], BOB, "Any news?\n")
    assert desk.messages(bobs)[-1]["text"] == "Any news?" and desk.ticket(bobs)["status"] == "open"


def test_a_chain_of_merges_gives_each_conversation_back_to_where_its_merge_led(desk):
    anns = _open(desk, build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    bobs = _open(desk, build_mail(BOB, "Bob's printer is smoking.\n", subject="Printer outage"))
    carols = _open(desk, build_mail(CAROL, "Carol's printer is dead.\n", subject="Printer dead"))
    anns_again = _open(desk, build_mail(ANN, "Ann again: still burning.\n", subject="Still on fire"))
    merge(desk.app, carols, bobs)
    merge(desk.app, bobs, anns_again)
    merge(desk.app, anns_again, anns)

    erased = _forget(desk, ANN)

    assert sorted(erased.tickets) == [anns, anns_again]
    # Carol's ticket was merged into Bob's, which stays: her words are there, with his.
    assert [m["text"] for m in desk.messages(bobs)] == ["Bob's printer is smoking.", "Carol's printer is dead."]
    assert desk.messages(carols) == []
    assert (desk.ticket(carols)["merged_into"], desk.ticket(bobs)["merged_into"]) == (bobs, None)
    assert {p["email"]: p["role"] for p in desk.rows(t.participants, ticket_id=bobs)} == {
        BOB: "requester", CAROL: "follower"}
    assert [m["ticket_id"] for m in desk.rows(t.messages)] == [bobs, bobs]


def test_tickets_delete_of_a_merge_target_still_erases_what_was_merged_into_it(desk):
    from ticketd.erase import erase_ticket

    anns = _open(desk, build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    bobs = _open(desk, build_mail(BOB, "Bob's printer is smoking.\n", subject="Printer outage"))
    merge(desk.app, bobs, anns)

    erase_ticket(desk.app.engine, desk.app.settings.attachments_dir, anns, "`ticketd tickets delete`")

    # The admin erased the ticket with its whole conversation (README), the merged one included.
    assert desk.rows(t.messages) == [] and desk.ticket(bobs)["merged_into"] is None


def test_a_ticket_of_theirs_merged_into_another_customers_leaves_that_conversation_alone(desk):
    bobs = _open(desk, build_mail(BOB, "Bob's printer is smoking.\n", subject="Printer outage"))
    anns = _open(desk, build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    carols = _open(desk, build_mail(CAROL, "Carol's printer is dead.\n", subject="Printer dead"))
    merge(desk.app, carols, anns)
    merge(desk.app, anns, bobs)

    _forget(desk, ANN)

    # Everything lives on Bob's ticket, which stays: only Ann's words there are erased, Carol's lead there still.
    assert [m["text"] for m in desk.messages(bobs)] == [
        "Bob's printer is smoking.", "[erased]", "Carol's printer is dead."]
    assert desk.ticket(carols)["merged_into"] == bobs and desk.events(bobs, "unmerged") == []
