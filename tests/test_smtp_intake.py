"""The SMTP receiver, driven by a real smtplib client, on SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from sqlalchemy import func, select

from ingest.smtp import Receiver
from tests.received import as_sent
from ticketd.pipeline import drain
from ticketd.store.tables import messages, participants, raw_mail, tickets


def _mail(subject="Printer on fire", body="It is on fire.\n", sender="cust@example.org", **headers):
    msg = EmailMessage()
    msg["From"] = f"Customer <{sender}>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = headers.pop("message_id", f"<{abs(hash((subject, body)))}@client.example.org>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def test_mail_becomes_ticket_and_reply_threads(receiver_app):
    app, receiver = receiver_app
    first = _mail(message_id="<first@client.example.org>")
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        refused = client.send_message(first)
    assert refused == {}
    assert drain(app) == 1
    with app.engine.connect() as conn:
        ticket = conn.execute(select(tickets)).mappings().one()
    assert ticket["status"] == "new"
    assert ticket["subject"] == "Printer on fire"
    assert ticket["requester"] == "cust@example.org"

    reply = _mail(subject=f"Re: [#{ticket['id']}] Printer on fire",
                  body="Now it is smoking.\n\nOn Mon, Customer wrote:\n> It is on fire.\n",
                  message_id="<second@client.example.org>",
                  In_Reply_To="<first@client.example.org>", References="<first@client.example.org>")
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.send_message(reply)
    assert drain(app) == 1
    with app.engine.connect() as conn:
        rows = conn.execute(select(messages).order_by(messages.c.id)).mappings().all()
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 1
    assert [r["ticket_id"] for r in rows] == [ticket["id"], ticket["id"]]
    assert rows[1]["matched_by"] == "references"
    assert rows[1]["text"] == "Now it is smoking."
    assert "> It is on fire." in rows[1]["full_text"]


def test_unknown_recipient_is_refused_with_550(receiver_app):
    _app, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        client.mail("cust@example.org")
        code, _ = client.rcpt("someone-else@example.com")
    assert code == 550


def test_postmaster_is_accepted_and_read_like_support_mail(receiver_app):
    """RFC 5321 section 4.5.1: postmaster, bare or at our domain, MUST be accepted; a remote admin's
    mail there is a ticket, and postmaster is never taken for a follower to copy replies to."""
    app, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        client.mail("admin@client.example.org")
        assert client.rcpt("postmaster")[0] == 250
        assert client.rcpt("PostMaster@Example.COM")[0] == 250
        assert client.rcpt("postmaster@elsewhere.example")[0] == 550
        client.rset()
        msg = _mail(subject="Your server sends us mail with a bad HELO", sender="admin@client.example.org")
        msg.replace_header("To", "postmaster@example.com")
        msg["Cc"] = "Support <support@example.com>, Postmaster <postmaster@example.com>, boss@client.example.org"
        assert client.send_message(msg, to_addrs=["postmaster@example.com"]) == {}
    assert drain(app) == 1
    with app.engine.connect() as conn:
        ticket = conn.execute(select(tickets)).mappings().one()
        people = conn.execute(select(participants.c.email)).scalars().all()
    assert (ticket["subject"], ticket["requester"]) == ("Your server sends us mail with a bad HELO",
                                                        "admin@client.example.org")
    assert sorted(people) == ["admin@client.example.org", "boss@client.example.org"]


def test_what_is_not_offered_is_answered_as_such(receiver_app):
    """AUTH got aiosmtpd's "538 encryption required" (try again over TLS), HELP listed AUTH and not DATA,
    and a refused recipient was echoed in doubled brackets, or with its control characters."""
    _app, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH", "PLAIN AGFAAGI=") == (502, b"5.5.1 AUTH is not offered here")
        code, listed = client.docmd("HELP")
        assert code == 250 and b" DATA " in listed and b"AUTH" not in listed
        assert client.mail("cust@example.org")[0] == 250
        assert client.docmd("RCPT TO:<>") == (550, b"5.1.1 <>: no such mailbox here")
        assert client.docmd("RCPT TO:<a\x00b@example.org>") == (550, b"5.1.1 <a?b@example.org>: no such mailbox here")


def test_second_delivery_is_stored_once(receiver_app):
    app, receiver = receiver_app
    msg = _mail(message_id="<dup@client.example.org>")
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.send_message(msg)
        del msg["Received"]
        msg["Received"] = "from relay.example.net by mx.example.com; Mon, 1 Jan 2024 00:00:00 +0000"
        client.send_message(msg)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(raw_mail)).scalar_one() == 1


def test_oversized_mail_is_refused_at_mail_from(make_app, sqlite_url):
    app = make_app(sqlite_url, extra="")
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.ehlo()
            code, _ = client.mail("cust@example.org", options=[f"SIZE={app.settings.smtp.max_message_bytes + 1}"])
        assert code == 552
    finally:
        receiver.stop()


def test_a_nul_byte_in_the_message_id_does_not_make_the_mail_unstorable(receiver_app):
    app, receiver = receiver_app
    raw = (b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: nul\r\n"
           b"Message-ID: <bad\x00id@client.example.org>\r\n\r\nbody\r\n")
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        assert client.sendmail("cust@example.org", ["support@example.com"], raw) == {}
    with app.engine.connect() as conn:
        stored = conn.execute(select(raw_mail.c.message_id, raw_mail.c.raw)).one()
    assert stored.message_id == "badid@client.example.org" and as_sent(bytes(stored.raw)) == raw
    assert drain(app) == 1


def test_long_lines_and_bare_lf_line_ends_are_taken_not_bounced(receiver_app):
    """aiosmtpd alone answers 500 to both; a 5xx would bounce a customer's mail."""
    app, receiver = receiver_app
    port = receiver.port
    long_line = ("word " * 1200).strip()              # 6000 octets on one line
    crlf = (b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: One long line\r\n"
            b"Message-ID: <long@client.example.org>\r\n\r\n" + long_line.encode() + b"\r\n")
    bare_lf = (b"From: script@example.org\nTo: support@example.com\nSubject: Sent by a script\n"
               b"Message-ID: <lf@client.example.org>\n\n" + b"line\n" * 400)
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail("cust@example.org", ["support@example.com"], crlf) == {}
        assert client.sendmail("script@example.org", ["support@example.com"], bare_lf) == {}
    assert drain(app) == 2
    with app.engine.connect() as conn:
        stored = dict(conn.execute(select(raw_mail.c.message_id, raw_mail.c.raw)).all())
        subjects = sorted(conn.execute(select(tickets.c.subject)).scalars())
        texts = list(conn.execute(select(messages.c.text).order_by(messages.c.id)).scalars())
    assert as_sent(bytes(stored["long@client.example.org"])) == crlf
    assert subjects == ["One long line", "Sent by a script"]
    assert texts[0] == long_line and texts[1].count("line") == 400
