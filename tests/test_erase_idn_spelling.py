"""`ticketd forget` of an address whose domain is internationalised reaches it in either spelling of the domain."""

from __future__ import annotations

from tests.test_erase import deliver, mail_bytes, rows
from ticketd.domain.erase import spellings
from ticketd.erase import forget
from ticketd.store import tables as t

UNICODE, ASCII = "kunde@bücher.example", "kunde@xn--bcher-kva.example"


def test_forget_given_the_unicode_domain_reaches_mail_that_spelled_it_in_ascii(make_app, db_url):
    app = make_app(db_url)
    # A mailer without SMTPUTF8 writes the domain in A-labels; the customer asks in the form they know.
    deliver(app, mail_bytes(ASCII, "Bestellung", "<b1@client.example.org>"),
            mail_bytes("other@example.org", "Scanner jammed", "<o1@client.example.org>", cc=ASCII))
    assert [m["from_addr"] for m in rows(app, t.messages)] == [ASCII, "other@example.org"]

    erased = forget(app.engine, app.settings.attachments_dir, UNICODE, "`ticketd forget`")

    # One person, one mailbox: the domain is the same in either spelling (RFC 5890).
    assert len(erased.tickets) == 1
    assert [m["from_addr"] for m in rows(app, t.messages)] == ["other@example.org"]
    assert rows(app, t.participants, t.participants.c.email.in_([UNICODE, ASCII])) == []
    [kept] = rows(app, t.messages)
    assert ASCII not in kept["cc_addrs"] and kept["text"] == "Help, please."


def test_the_spellings_of_an_address_are_both_forms_of_its_domain_and_nothing_else():
    assert spellings(UNICODE) == [UNICODE, ASCII]
    assert spellings(ASCII) == [ASCII, UNICODE]
    assert spellings("ann@example.org") == ["ann@example.org"]
    # The local part is never touched, nor a domain IDNA cannot read.
    assert spellings("Ünal@example.org".lower()) == ["ünal@example.org"]
    assert spellings("x@xn--invalid-.example") == ["x@xn--invalid-.example"]
