"""ticketd knows its own address written with its domain in U-labels, and never mails it.

The support address is kept with its domain in A-labels (ticketd.settings),
and the receiver takes mail to either form (RFC 6531 section 3.3). A
customer who Cc'd `hilfe@bücher.example` made that a follower, and every
agent's reply to the followers went to ticketd itself (PRODUCT.md, Loops and
robots: it never answers its own mail).
"""

from __future__ import annotations

import email.policy
import smtplib
from email.message import EmailMessage

import pytest

from tests.desk import build_mail, open_desk
from ticketd.pipeline import drain
from ticketd.store.tables import outbox, participants

ALICE, CUSTOMER, COLLEAGUE = "alice@example.com", "kunde@example.org", "kollege@example.org"
SUPPORT = "hilfe@xn--bcher-kva.example"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, extra="support_address: hilfe@bücher.example\n"
                                                     "smtp:\n  extra_addresses: [hjälp@bücher.example]\n")


def _customer_mail(cc: str) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = f"Kunde <{CUSTOMER}>"
    msg["To"] = SUPPORT
    msg["Cc"] = f"{cc}, {COLLEAGUE}"
    msg["Subject"] = "Drucker brennt"
    msg["Message-ID"] = "<first@client.example.org>"
    msg.set_content("Der Drucker brennt.\n")
    return msg


@pytest.mark.parametrize("ours", ["Hilfe <hilfe@bücher.example>", "hilfe+x@bücher.example",
                                  "hjälp@xn--bcher-kva.example"])
def test_an_agents_reply_goes_to_the_followers_but_not_to_our_own_address(desk, ours):
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        client.send_message(_customer_mail(ours), to_addrs=[SUPPORT])
    assert drain(desk.app) == 1
    desk.flush()
    ticket_id = desk.ticket()["id"]
    assert desk.assign(ticket_id) == ALICE
    desk.send(build_mail(ALICE, "Bitte ausstecken.\n", to=desk.agent_address(ticket_id, ALICE),
                         subject=f"Re: [#{ticket_id}] Drucker brennt"))
    recipients = {r["recipient"] for r in desk.rows(outbox, template="requester/agent_reply")}
    assert recipients == {CUSTOMER, COLLEAGUE}
    assert [m.rcpt_tos for m in desk.sink.messages if not set(m.rcpt_tos) <= {CUSTOMER, COLLEAGUE, ALICE}] == []
    people = {p["email"] for p in desk.rows(participants, ticket_id=ticket_id)}
    assert CUSTOMER in people and COLLEAGUE in people
    assert not any("bücher" in p or "xn--bcher" in p for p in people), people
