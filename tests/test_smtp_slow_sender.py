"""The receiver's timeout is for a quiet sender, not for a slow mail (RFC 5321 section 4.5.3.2)."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from tests.received import as_sent
from ticketd.store.tables import raw_mail

TIMEOUT = 1.5


@pytest.fixture
def receiver(make_app, sqlite_url):
    app = make_app(sqlite_url)
    receiver = Receiver(app, idle_timeout=TIMEOUT)
    receiver.start()
    yield app, receiver
    receiver.stop(body_grace=1, timeout=1)


def _stored(app) -> list[bytes]:
    with app.engine.connect() as conn:
        return [as_sent(bytes(raw)) for raw in conn.execute(select(raw_mail.c.raw)).scalars()]


def _in_data(port: int) -> tuple[socket.socket, object]:
    """A raw client that has heard 354."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    for command in (b"HELO client", b"MAIL FROM:<cust@example.org>", b"RCPT TO:<support@example.com>", b"DATA"):
        sock.sendall(command + b"\r\n")
        reply = f.readline()
    assert reply.startswith(b"354")
    return sock, f


def test_a_mail_arriving_slowly_for_longer_than_the_timeout_is_taken(receiver):
    """aiosmtpd armed its timeout at the DATA command only: a big mail on a slow link, never quiet, was cut
    off that long after DATA, on every retry alike, until its sender bounced it."""
    app, receiver = receiver
    head = b"From: cust@example.org\r\nSubject: A big scan\r\nMessage-ID: <slow@client.example.org>\r\n\r\n"
    sock, f = _in_data(receiver.port)
    with sock, f:
        sock.sendall(head)
        started = time.monotonic()
        lines = []
        while time.monotonic() - started < 2.5 * TIMEOUT:   # never quiet for as long as the timeout
            lines.append(b"part %d of the scan\r\n" % len(lines))
            sock.sendall(lines[-1])
            time.sleep(TIMEOUT / 6)   # well within the timeout, even on a busy machine
        sock.sendall(b".\r\n")
        assert f.readline().startswith(b"250 2.0.0 OK")
    assert _stored(app) == [head + b"".join(lines)]


def test_a_sender_quiet_in_the_middle_of_a_mail_is_cut_off_and_nothing_is_kept(receiver):
    app, receiver = receiver
    sock, f = _in_data(receiver.port)
    with sock, f:
        sock.sendall(b"Subject: half\r\n\r\nthe rest never comes\r\n")
        assert f.readline() == b""   # closed by the receiver, about TIMEOUT after the last bytes
    assert _stored(app) == []


def test_a_session_quiet_between_commands_is_closed(receiver):
    _app, receiver = receiver
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock, sock.makefile("rb") as f:
        assert f.readline().startswith(b"220")
        started = time.monotonic()
        assert f.readline() == b""
        assert time.monotonic() - started < 5 * TIMEOUT
