"""The receiver puts a Received line on top of each mail it takes (RFC 5321 section 4.4), and only that."""

from __future__ import annotations

import smtplib
import socket
import time
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from ingest.trace import received_line
from tests.received import as_sent
from ticketd.pipeline import drain
from ticketd.store.tables import raw_mail, tickets

MAIL = (b"From: Customer <cust@example.org>\r\nTo: support@example.com\r\nSubject: The printer\r\n"
        b"Message-ID: <printer@client.example.org>\r\n\r\nIt is on fire.\r\n")


@pytest.fixture
def receiver(make_app, sqlite_url):
    app = make_app(sqlite_url)
    started = Receiver(app)
    started.start()
    yield app, started
    started.stop()


def _stored(app) -> list[bytes]:
    with app.engine.connect() as conn:
        return [bytes(raw) for raw in conn.execute(select(raw_mail.c.raw).order_by(raw_mail.c.id)).scalars()]


def _split(raw: bytes) -> tuple[str, bytes]:
    """Our Received line (unfolded) and the mail under it."""
    end = raw.index(b"\r\n", raw.index(b"; "))
    return raw[:end].decode().replace("\r\n\t", " "), raw[end + 2:]


def test_the_line_says_who_handed_the_mail_over_and_the_mail_under_it_is_unchanged(receiver):
    app, smtp = receiver
    before = time.time()
    with smtplib.SMTP("127.0.0.1", smtp.port, local_hostname="client.example.org") as client:
        assert client.sendmail("cust@example.org", ["support@example.com"], MAIL) == {}
    [raw] = _stored(app)
    line, mail = _split(raw)
    assert mail == MAIL == as_sent(raw)
    head, date = line.split("; ")
    assert head == ("Received: from client.example.org ([127.0.0.1]) by example.com (ticketd) with ESMTP "
                    "for <support@example.com>")
    assert before - 1 <= parsedate_to_datetime(date).timestamp() <= time.time() + 1
    assert date.endswith("+0000")
    assert drain(app) == 1   # and it is an ordinary mail to process


def test_helo_several_recipients_and_smtputf8_are_told_as_such(receiver):
    app, smtp = receiver
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.helo("old.example.org")   # HELO, not EHLO: plain SMTP
        client.sendmail("cust@example.org", ["support@example.com", "postmaster@example.com"],
                        MAIL.replace(b"<printer@", b"<two@"))
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.sendmail("müller@example.de", ["support@example.com"], MAIL.replace(b"<printer@", b"<utf8@"),
                        mail_options=["SMTPUTF8"])
    [plain, utf8] = [_split(raw)[0] for raw in _stored(app)]
    # With two readers no `for`: a Bcc'd one would otherwise be shown to the other.
    assert plain.startswith("Received: from old.example.org ([127.0.0.1]) by example.com (ticketd) with SMTP; ")
    assert " with UTF8SMTP for <support@example.com>; " in utf8


def test_a_second_delivery_is_still_the_same_mail(receiver):
    """The dedupe key is the mail's own, not of our line with its other time; also for a mail whose head the
    parser cannot read, which is keyed by its bytes."""
    app, smtp = receiver
    unreadable_head = b"From cust@example.org\r\n\x00\x01: ?\r\n\r\nbody\r\n"
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.sendmail("cust@example.org", ["support@example.com"], MAIL)
            client.sendmail("cust@example.org", ["support@example.com"], unreadable_head)
        time.sleep(1.1)   # another second in our line's date
    assert len(_stored(app)) == 2


def test_a_bare_lf_mail_gets_a_bare_lf_line():
    line = received_line(helo="c.example", peer=("2001:db8::1", 25, 0, 0), by="example.com", esmtp=True,
                         smtputf8=False, recipients=["a@example.com"], when=parsedate_to_datetime(
                             "Wed, 25 Nov 2026 09:00:00 +0000"), line_end=b"\n")
    assert line == (b"Received: from c.example ([IPv6:2001:db8::1])\n\tby example.com (ticketd) with ESMTP\n"
                    b"\tfor <a@example.com>; Wed, 25 Nov 2026 09:00:00 +0000\n")


@pytest.mark.parametrize(("helo", "peer", "shown"), [
    ("evil (x)\tname", ("::ffff:192.0.2.7", 25, 0, 0), "from evil??x??name ([192.0.2.7])"),
    (None, "/run/ticketd.sock", "from unknown by"),
    ("h" * 300, ("192.0.2.1", 25), "from " + "h" * 255 + " ([192.0.2.1])"),
])
def test_what_the_client_says_cannot_break_the_line(helo, peer, shown):
    line = received_line(helo=helo, peer=peer, by="example.com", esmtp=True, smtputf8=False, recipients=[],
                         when=parsedate_to_datetime("Wed, 25 Nov 2026 09:00:00 +0000")).decode()
    assert shown in line.replace("\r\n\t", " ")
    assert line.count("\r\n") == 2 and line.endswith("\r\n") and "\n" not in line.replace("\r\n", "")


def test_the_client_is_named_by_the_address_it_came_from(receiver):
    """Not by what it says: the address the connection came from is the one part a client cannot make up."""
    app, smtp = receiver
    with socket.create_connection(("127.0.0.1", smtp.port)) as sock:
        client = smtplib.SMTP()
        client.sock, client.file = sock, None
        client.getreply()
        client.ehlo("[203.0.113.9]")
        client.sendmail("cust@example.org", ["support@example.com"], MAIL)
        client.quit()
    line, _ = _split(_stored(app)[0])
    assert line.startswith("Received: from [203.0.113.9] ([127.0.0.1]) by ")


def test_a_mail_opening_with_an_mbox_separator_keeps_its_headers(receiver):
    """A mail saved from a mailbox file and sent on whole opens with `From addr date`: our line goes under
    it, where the header block begins, or the mail's headers would be read as its body."""
    app, smtp = receiver
    saved = b"From cust@example.org Mon Nov 23 10:00:00 2026\r\n" + MAIL
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.sendmail("cust@example.org", ["support@example.com"], saved)
    [raw] = _stored(app)
    assert raw.startswith(b"From cust@example.org Mon Nov 23 10:00:00 2026\r\nReceived: from ")
    assert drain(app) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(tickets.c.subject)).scalar_one() == "The printer"

