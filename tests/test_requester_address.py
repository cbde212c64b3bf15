"""A customer mail whose From names no address: the requester comes from Sender or the envelope, or there is none.

A ticket with no address to answer never puts a non-address into an SMTP
RCPT: an agent's public reply is refused with agent/command_rejected
(tests/test_outbound_not_an_address.py: outbound refuses one too).
"""

from __future__ import annotations

import json
import smtplib

import pytest

from ingest.headers import is_address
from ingest.parse import parse_mail
from tests.cli import cli_ok
from tests.conftest import MINIMAL_RULES
from tests.desk import body_text, build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.requester import ENVELOPE, requester_of
from ticketd.pipeline import drain
from ticketd.rules_dryrun import dry_run
from ticketd.rules_file import load_rules_text
from ticketd.store.tables import participants, tickets

ALICE = "alice@example.com"
JOHN = "john@client.example.org"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


@pytest.fixture
def sqlite_desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _raw(from_line: str | None, *extra: str, message_id: str = "<nf1@client.example.org>") -> bytes:
    head = [from_line] if from_line is not None else []
    head += ["To: support@example.com", "Subject: Printer on fire", f"Message-ID: {message_id}", *extra]
    return ("\r\n".join(head) + "\r\n\r\nThe printer is on fire.\r\n").encode()


def _send(desk, raw: bytes, mail_from: str) -> None:
    """Deliver raw bytes to our receiver with this SMTP envelope sender, as an MTA would; process; flush."""
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        assert client.sendmail(mail_from, ["support@example.com"], raw) == {}
    assert drain(desk.app) == 1
    desk.flush()


def _recipients(desk) -> set[str]:
    return {r for m in desk.sink.messages for r in m.rcpt_tos}


@pytest.mark.parametrize("from_line", ["From: John Smith", None])
def test_a_mail_naming_no_address_anywhere_opens_a_ticket_nobody_is_mailed_for(desk, from_line, tmp_path):
    # No address in From (or no From at all), no Sender, an envelope sender that is no address either.
    _send(desk, _raw(from_line), "John Smith")
    ticket = desk.ticket()
    tid = ticket["id"]
    assert (ticket["requester"], ticket["requester_name"]) == ("", "John Smith" if from_line else None)
    [why] = desk.events(tid, "requester")
    assert why["to_value"] is None and "no address to answer" in why["reason"]
    assert desk.assign(tid) == ALICE
    assert _recipients(desk) == {ALICE}   # no acknowledgement to a non-address
    # The agent learns it with the ticket, before writing a reply that would reach no one.
    assigned = desk.last(ALICE)
    assert "From:     (no address)" in body_text(assigned)
    assert "no address to answer" in body_text(assigned).lower()
    assert "no address to answer" in assigned.get_body(("html",)).get_content().lower()

    # The agent's public reply is refused, saying why; nothing leaves for the customer, nothing changes.
    desk.send(build_mail(ALICE, "Have you tried turning it off?\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert _recipients(desk) == {ALICE}
    assert all(is_address(row["recipient"]) for row in desk.rows())
    told = desk.last(ALICE)
    assert "no address to answer" in body_text(told)
    assert desk.ticket(tid)["status"] == "new"
    [rejected] = desk.events(tid, "commands_rejected")
    assert "no address to answer" in rejected["reason"]

    # Commands alone still work: the ticket closes, and no closing mail goes to a non-address.
    desk.send(build_mail(ALICE, "#close\n", to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer"))
    assert desk.ticket(tid)["status"] == "closed"
    assert all(is_address(row["recipient"]) for row in desk.rows())

    shown = json.loads(cli_ok(tmp_path / "ticketd.yaml", "tickets", "show", str(tid), "--json"))
    assert (shown["requester"], shown["followers"]) == ("", [])

    # Erasure works by ticket (`ticketd forget` needs an address, which this ticket never had).
    cli_ok(tmp_path / "ticketd.yaml", "tickets", "delete", str(tid), "--yes")
    assert desk.rows(tickets) == []


def test_follow_gives_a_ticket_with_no_address_someone_to_answer(sqlite_desk):
    """The refusal names #follow; with it, the agent's reply reaches the address they learnt elsewhere."""
    desk = sqlite_desk
    _send(desk, _raw("From: John Smith"), "John Smith")
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    desk.send(build_mail(ALICE, "Have you tried turning it off?\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert "Name whom it is for with #follow <address>" in body_text(desk.last(ALICE))
    desk.send(build_mail(ALICE, f"#follow {JOHN}\nHave you tried turning it off?\n",
                         to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer on fire"))
    assert "Have you tried turning it off?" in body_text(desk.last(JOHN))
    assert _recipients(desk) == {ALICE, JOHN} and desk.ticket(tid)["requester"] == ""


def test_a_from_without_address_takes_sender(desk):
    _send(desk, _raw("From: John Smith", "Sender: John <JOHN@client.example.org>"), "bounces@lists.example.net")
    ticket = desk.ticket()
    assert (ticket["requester"], ticket["requester_name"]) == (JOHN, "John Smith")
    [why] = desk.events(ticket["id"], "requester")
    assert why["to_value"] == JOHN and "Sender" in why["reason"]
    assert desk.last(JOHN)["Subject"].startswith(f"[#{ticket['id']}]")   # acknowledged where replies go
    assert desk.assign(ticket["id"]) == ALICE
    desk.send(build_mail(ALICE, "Have you tried turning it off?\n", to=desk.agent_address(ticket["id"], ALICE),
                         subject=f"Re: [#{ticket['id']}] Printer on fire"))
    assert "Have you tried turning it off?" in body_text(desk.last(JOHN))
    assert _recipients(desk) == {JOHN, ALICE}


def test_a_from_without_address_and_no_sender_takes_the_envelope_sender(sqlite_desk):
    desk = sqlite_desk
    _send(desk, _raw("From: John Smith"), "JOHN@client.example.org")
    ticket = desk.ticket()
    assert ticket["requester"] == JOHN
    [why] = desk.events(ticket["id"], "requester")
    assert why["to_value"] == JOHN and "envelope sender" in why["reason"]
    assert desk.last(JOHN)["Subject"].startswith(f"[#{ticket['id']}]")


def test_an_address_in_from_still_wins_over_sender_and_envelope(sqlite_desk):
    desk = sqlite_desk
    _send(desk, _raw("From: Mary <mary@client.example.org>", f"Sender: {JOHN}"), JOHN)
    ticket = desk.ticket()
    assert ticket["requester"] == "mary@client.example.org" and desk.events(ticket["id"], "requester") == []


def test_rules_test_says_where_the_requester_comes_from_or_that_there_is_none():
    rules = load_rules_text(MINIMAL_RULES)

    def lines(*head: str) -> list[str]:
        return dry_run(rules, parse_mail(_raw(*head)), utcnow()).lines()

    nobody = lines("From: John Smith")
    assert ("requester: no address to answer: the mail names none in From (From: John Smith), Sender or the "
            "envelope sender; nothing is sent to the customer, and agents' public replies are refused") in nobody
    assert "acknowledgement: none (no address to answer)" in nobody[2]
    assert not any(line.startswith("mail: requester/") for line in nobody)
    by_sender = lines("From: John Smith", f"Sender: {JOHN}")
    assert f"requester: the mail names no address in From (From: John Smith): replies go to Sender, {JOHN}" in by_sender
    assert f"mail: requester/ticket_opened to {JOHN}" in by_sender
    # A file has no envelope: its Return-Path stands for it, as for mail fetched by IMAP.
    by_return_path = lines("From: John Smith", f"Return-Path: <{JOHN}>")
    assert f"mail: requester/ticket_opened to {JOHN}" in by_return_path
    assert not any(line.startswith("requester:") for line in lines(f"From: {JOHN}"))


def test_a_dot_ending_the_domain_is_taken_off_and_the_customer_answered(sqlite_desk):
    """ "Claudia@Cust.example." was the requester as written; the smarthost refused the acknowledgement to it
    for good (553, malformed address), and a reply from the address without the dot was someone else's."""
    desk = sqlite_desk
    _send(desk, _raw('From: "Claudia" <Claudia@Client.example.org.>', "Cc: Boss <boss@client.example.org.>"),
          "bounces@client.example.org")
    ticket = desk.ticket()
    customer, boss = "claudia@client.example.org", "boss@client.example.org"
    assert ticket["requester"] == customer
    assert sorted((p["email"], p["role"]) for p in desk.rows(participants, ticket_id=ticket["id"])) == [
        (boss, "follower"), (customer, "requester")]
    ack = desk.last(customer)
    assert ack["Subject"].startswith(f"[#{ticket['id']}]")
    assert _recipients(desk) == {customer}
    desk.send(build_mail(customer, "It smokes now.\n", subject=f"Re: [#{ticket['id']}] Printer on fire"))
    assert desk.messages(ticket["id"])[-1]["matched_by"] == "subject_tag"


def test_an_envelope_sender_with_a_dot_ending_its_domain_is_answered_without_it():
    """Return-Path of mail fetched by IMAP, for a From that names no address: as a header's address."""
    found = requester_of(None, None, "John Smith", [], None, use_reply_to=False, not_a_customer=lambda a: False,
                         envelope_from="<John@Client.example.org.>")
    assert (found.address, found.source) == (JOHN, ENVELOPE)
