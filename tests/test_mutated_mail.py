"""Mail a byte or a line away from the corpus (found by mutating it at random) becomes a ticket on either database.

Each case once stopped a mail: the receiver answered 451 for ever, or the mail was
stored and quarantined for good, its customer unanswered.
"""

from __future__ import annotations

import json
import smtplib

from sqlalchemy import select

from tests.cli import cli_ok
from tests.conftest import write_config
from ticketd.pipeline import drain
from ticketd.store import tables as t

WORDS = "The printer is on fire."

MAILS = {
    # A line that is no header, with a byte of Latin-1, under a Content-Type whose charset holds a NUL:
    # the dedupe key raised before the 250.
    "nul in a charset": (b'Content-Type: text/plain; charset="utf\x008"\r\nnot a header \xe9\r\n\r\n'
                         + WORDS.encode() + b"\r\n"),
    # A part's Content-Type with an 8-bit byte in its subtype: the attachment's type could not be stored.
    "8-bit byte in a part's type": (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + WORDS.encode() + b"\r\n--b1\r\n"
        b'Content-Type: text/plai\xb7\r\nContent-Disposition: attachment; filename="log.txt"\r\n\r\n'
        b"paper jam at 451 degrees\r\n--b1--\r\n"),
}


def _send(port: int, n: int, subject: str, rest: bytes, sender: str = "cust@example.org",
          header: bytes = b"") -> None:
    raw = (f"From: Kunde <{sender}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <mut{n}@client.example.org>\r\n").encode() + header + rest
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail(sender, ["support@example.com"], raw) == {}


def test_mutated_corpus_mail_opens_tickets_with_the_customer_s_words(receiver_app, tmp_path, db_url):
    app, receiver = receiver_app
    config = write_config(tmp_path, db_url)
    for n, (subject, rest) in enumerate(MAILS.items()):
        _send(receiver.port, n, subject, rest)
    assert drain(app) == len(MAILS)
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    tickets = {t["subject"]: t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json"))}
    assert set(tickets) == set(MAILS)
    for subject, ticket_id in tickets.items():
        shown = json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))
        [message] = [m for m in shown["messages"] if m["direction"] == "in"]
        assert message["text"] == WORDS, subject
    with app.engine.connect() as conn:
        files = conn.execute(select(t.attachments.c.filename, t.attachments.c.content_type)).all()
    assert [tuple(f) for f in files] == [("log.txt", "application/octet-stream")]


def test_a_bounce_with_8_bit_bytes_in_from_and_in_reply_to_is_stored_as_robot_mail(receiver_app, tmp_path,
                                                                                   db_url):
    """compat32 gives such a field as a Header object, which the plain-bounce reader could not read: the
    bounce was quarantined. It is robot mail on no ticket of ours, kept and answered by nobody."""
    app, receiver = receiver_app
    config = write_config(tmp_path, db_url)
    _send(receiver.port, 9, "Undelivered Mail", b"\r\nThis is the mail system at host mx.example.org.\r\n",
          sender="mailer-daemon@example.org",
          header=b"In-Reply-To: <a\xe9@client.example.org>\r\nAuto-Submitted: auto-replied\r\n")
    assert drain(app) == 1
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    with app.engine.connect() as conn:
        assert conn.execute(select(t.raw_mail.c.state)).scalars().all() == ["done"]
        assert conn.execute(select(t.outbox.c.id)).all() == []

