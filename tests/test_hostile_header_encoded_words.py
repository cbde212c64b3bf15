"""A subject encoded twice reaches our mail as the text the customer wrote: never an encoded word a reader decodes.

Ingest decodes a Subject's encoded words once (RFC 2047 section 6.1), so a word that decodes to another
encoded word is stored as that literal text. Written into our Subject as it is, the reader's client would
decode it again, and show the line breaks and direction overrides taken out of every header we send.
"""

from __future__ import annotations

import email
import email.policy
from email.header import Header

import pytest

from tests.desk import open_desk

CUSTOMER = "cust@example.org"

LITERALS = {
    "a Bcc after a line break": "=?utf-8?q?=0D=0ABcc:_victim@example.net?=",
    "a right-to-left override": "Invoice =?utf-8?q?=E2=80=AEfdp.exe?=",
    "a word in Latin-1": "x =?iso-8859-1?q?caf=E9?= y",
}


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _as_read(msg) -> email.message.EmailMessage:
    """The mail as a client reads it: every header field's encoded words decoded."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


@pytest.mark.parametrize("literal", LITERALS.values(), ids=LITERALS.keys())
def test_a_subject_encoded_twice_reads_back_as_its_literal_text(desk, literal):
    # Written by hand: a client's EmailMessage would decode the encoded Subject it is given.
    desk.send_raw(f"From: Customer <{CUSTOMER}>\r\nTo: support@example.com\r\n"
                  f"Subject: {Header(literal, 'utf-8').encode()}\r\nMessage-ID: <twice@client.example.org>\r\n"
                  "\r\nHello.\r\n".encode(), mail_from=CUSTOMER)
    ticket = desk.ticket()
    assert ticket["subject"] == literal
    ticket_id = ticket["id"]
    agent = desk.assign(ticket_id)
    assert agent in ("alice@example.com", "bob@example.com")
    mails = {"acknowledgement": desk.last(CUSTOMER), "agent's notice": desk.last(agent)}
    for who, mail in mails.items():
        read = _as_read(mail)
        subject = str(read["Subject"])
        assert subject.startswith(f"[#{ticket_id}] ") and subject.endswith(f" {literal}"), (who, subject)
        assert not any(ch in subject for ch in "\r\n\u202e\xe9"), (who, subject)
        assert read["Bcc"] is None and not read.defects, who
