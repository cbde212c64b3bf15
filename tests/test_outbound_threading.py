"""Threading headers of mail to customers name only the customers' own conversation, never a robot's mail."""

from __future__ import annotations

import smtplib

import pytest

from tests.desk import build_mail, open_desk
from tests.sink import delivery_report
from ticketd.pipeline import drain

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
BOUNCE_ID = "bounce-1@mx.example.org"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _ids(header) -> set[str]:
    return set(str(header or "").split())


def _open_ticket(desk):
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    return tid, str(first["Message-ID"]), desk.last(CUSTOMER)


def _agent_reply(desk, tid, body="Unplug it, please.\n"):
    desk.send(build_mail(ALICE, body, to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer"))
    return desk.last(CUSTOMER)


def test_a_bounce_stored_on_the_ticket_is_never_referenced(desk):
    tid, first_id, ack = _open_ticket(desk)
    with smtplib.SMTP("127.0.0.1", desk.receiver.port) as client:   # the ack bounced (a full mailbox)
        client.sendmail("", ["support@example.com"], delivery_report(str(ack["Message-ID"]).strip("<>"), CUSTOMER))
    assert drain(desk.app) == 1
    desk.flush()
    assert any(m["message_id"] == BOUNCE_ID and m["auto_generated"] for m in desk.messages(tid))
    # An agent's reply is still tried to a bounced address (outbound/outbox.py).
    reply = _agent_reply(desk, tid)
    assert f"<{BOUNCE_ID}>" not in _ids(reply["References"]) | _ids(reply["In-Reply-To"])
    assert reply["In-Reply-To"] == first_id and first_id in _ids(reply["References"])


def test_an_auto_reply_joining_the_ticket_is_never_referenced(desk):
    tid, first_id, ack = _open_ticket(desk)
    away = desk.reply_to(ack, CUSTOMER, "I am out of the office until Monday.\n", Auto_Submitted="auto-replied")
    away_id = str(away["Message-ID"])
    assert any(f"<{m['message_id']}>" == away_id and m["auto_generated"] for m in desk.messages(tid))
    reply = _agent_reply(desk, tid)
    assert away_id not in _ids(reply["References"]) | _ids(reply["In-Reply-To"])
    assert reply["In-Reply-To"] == first_id
    # The customer's own next mail is the conversation again: it is what later mail answers.
    own = desk.reply_to(reply, CUSTOMER, "Unplugged, thanks.\n")
    later = _agent_reply(desk, tid, "Good, it can cool down now.\n")
    assert later["In-Reply-To"] == str(own["Message-ID"]) and away_id not in _ids(later["References"])


def test_mail_of_anyone_but_the_customers_is_never_referenced(desk):
    """An agent's own mail that failed the agent checks (written fresh to support@) and an outsider's
    are kept on the ticket; their Message-IDs, naming the agent's host, never reach the customer."""
    tid, first_id, _ = _open_ticket(desk)
    private_id = "<alice.private-1@agents.example.com>"
    fresh = build_mail(ALICE, "Looking into it.\n", subject=f"Re: [#{tid}] Printer on fire")
    fresh.replace_header("Message-ID", private_id)
    desk.send(fresh)
    outsider = build_mail("mallory@example.net", "Any news?\n", subject="Re: Printer on fire", in_reply_to=first_id)
    outsider.replace_header("Message-ID", "<m-1@mallory.example.net>")
    desk.send(outsider)
    assert [m["message_id"] for m in desk.messages(tid) if m["direction"] == "in"][-2:] == [
        "alice.private-1@agents.example.com", "m-1@mallory.example.net"]
    reply = _agent_reply(desk, tid)
    assert str(reply["In-Reply-To"]) == first_id
    assert _ids(reply["References"]) == {first_id}
