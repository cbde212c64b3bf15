"""A SIZE parameter that is not a number is the sender's syntax error (501), not our trouble (451)."""

from __future__ import annotations

import logging
import socket

import pytest
from sqlalchemy import select

from tests.test_smtp_limits import _reply
from ticketd.store.tables import raw_mail


@pytest.mark.parametrize("size", ["²", "١٢٣", "12³"], ids=["superscript", "arabic-indic", "digits-then-superscript"])
def test_a_size_of_digits_beyond_ascii_gets_501_and_the_session_goes_on(receiver_app, caplog, size):
    """RFC 1870 section 6: size-value is 1*20DIGIT, ASCII digits. `²` passed aiosmtpd's str.isdigit check and
    then broke its int(): the sender heard 451 and sent the same MAIL again, a traceback logged each time."""
    app, receiver = receiver_app
    caplog.set_level(logging.INFO, logger="ticketd")
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock, sock.makefile("rb") as f:
        _reply(f)

        def say(line: str) -> bytes:
            sock.sendall(line.encode("utf-8") + b"\r\n")
            return _reply(f)

        assert say("EHLO client").startswith(b"250")
        assert say(f"MAIL FROM:<cust@example.org> SIZE={size}").startswith(b"501 ")
        assert say("MAIL FROM:<cust@example.org> SIZE=60").startswith(b"250 ")
        assert say("RCPT TO:<support@example.com>").startswith(b"250 ")
        assert say("DATA").startswith(b"354")
        assert say("Subject: Sized\r\nMessage-ID: <sized@client.example.org>\r\n\r\nHello.\r\n.").startswith(b"250 ")
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.message_id)).scalars().all() == ["sized@client.example.org"]
    assert "Traceback" not in caplog.text and "SMTP session error" not in caplog.text
