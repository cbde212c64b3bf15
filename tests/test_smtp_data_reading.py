"""The receiver reads a mail's DATA as aiosmtpd does: the same end, the same bytes, the same limits.

The receiver reads DATA in blocks (ingest/smtp.py IntakeSMTP._data);
aiosmtpd's own SMTP class, reading line by line, is the reference: each
stream goes to both, whole and cut into small pieces, with a NOOP
pipelined after the final dot to show where each server saw the data end.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from sqlalchemy import select

from ingest.smtp import Receiver, wire_limit
from tests.conftest import free_port
from tests.received import as_sent
from ticketd.store.tables import raw_mail

MAX = 10_000   # max_message_bytes of the receiver under test


class _Keeper:
    """The reference's handler: keeps each mail's bytes."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append(envelope.original_content)
        return "250 OK"


class _ReferenceSMTP(SMTP):
    line_length_limit = MAX + 1   # as the receiver sets it (ingest/smtp.py Receiver)


class _Reference(Controller):
    def factory(self) -> SMTP:
        return _ReferenceSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture(scope="module")
def reference():
    keeper = _Keeper()
    controller = _Reference(keeper, hostname="127.0.0.1", port=free_port(), data_size_limit=wire_limit(MAX),
                            decode_data=False, enable_SMTPUTF8=True)
    controller.start()
    yield controller.port, keeper
    controller.stop()


@pytest.fixture
def receiver(make_app, sqlite_url):
    app = make_app(sqlite_url, extra=f"smtp:\n  listen: 127.0.0.1:{free_port()}\n  max_message_bytes: {MAX}\n")
    receiver = Receiver(app)
    receiver.start()
    yield app, receiver
    receiver.stop()


def _reply(f) -> bytes:
    lines = [f.readline()]
    while len(lines[-1]) >= 4 and lines[-1][3:4] == b"-":
        lines.append(f.readline())
    return b"".join(lines)


def _deliver(port: int, wire: bytes, piece: int) -> tuple[bytes, bytes]:
    """(reply after the data, reply to the NOOP sent right after it) for `wire` sent in pieces of `piece` bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        assert _reply(f).startswith(b"220")
        for command in (b"EHLO client.example.org", b"MAIL FROM:<cust@example.org>",
                        b"RCPT TO:<support@example.com>", b"DATA"):
            sock.sendall(command + b"\r\n")
            _reply(f)
        stream = wire + b"NOOP\r\n"
        for start in range(0, len(stream), piece):
            sock.sendall(stream[start:start + piece])
            if piece < len(stream):
                time.sleep(0.001)   # each piece its own read on the server
        return _reply(f), _reply(f)


def _stored(app, reply: bytes) -> bytes:
    raw_id = int(re.search(rb"as (\d+)", reply)[1])
    with app.engine.connect() as conn:
        return as_sent(bytes(conn.execute(select(raw_mail.c.raw).where(raw_mail.c.id == raw_id)).scalar_one()))


HEAD = b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: reading DATA\r\n\r\n"
SHORT = {
    "empty": b".\r\n",
    "one line": HEAD + b"line\r\n.\r\n",
    "a line ending in a dot": HEAD + b"Thanks.\r\n.\r\n",
    "stuffed dots": HEAD + b"..\r\n...\r\n..x\r\nend.\r\n.\r\n",
    "stuffed first line": b"..leading\r\n.\r\n",
    "dot after a bare LF": HEAD + b"bare\n.\nlf\n.\r\nstill data\r\n.\r\n",
    "dot after a bare CR": HEAD + b"x\r.\r\nstill\r\n.\r\n",
    "no CRLF before the dot": HEAD + b"tail.\r\n..\r\n.\r\n",
    "8-bit": HEAD + "Grüße, Олег.\r\n".encode() + b".\r\n",
}
LONG = {
    "a line at the line limit": HEAD + b"y" * (MAX - len(HEAD) - 2) + b"\r\n.\r\n",
    "a line over the line limit": HEAD + b"y" * (MAX + 5) + b"\r\n.\r\n",
    # Under the message limit but over the reader's limit on the wire, with no `.` CRLF until the end.
    "stuffed lines past the reader's limit": HEAD + b"..x\r\n" * ((MAX - len(HEAD)) // 4) + b".\r\n",
    "stuffed lines past the message limit": HEAD + b"..x\r\n" * (MAX // 4 + 5) + b".\r\n",
    "dot lines past the wire limit": HEAD + b"..\r\n" * (wire_limit(MAX) // 4 + 5) + b".\r\n",
    "a mail twice the wire limit": HEAD + (b"z" * 70 + b".\r\n") * (2 * wire_limit(MAX) // 73) + b".\r\n",
}


def _assert_alike(app, reference, wire: bytes, piece: int) -> None:
    ref_port, keeper = reference
    kept = len(keeper.mails)
    expected, expected_noop = _deliver(ref_port, wire, piece)
    got, got_noop = _deliver(app.settings.smtp.host_port[1], wire, piece)
    assert got_noop.startswith(b"250") and expected_noop.startswith(b"250")   # both saw the data end there
    if expected.startswith(b"250") and len(keeper.mails[kept]) <= MAX:
        assert got.startswith(b"250 2.0.0 OK"), got
        assert _stored(app, got) == keeper.mails[kept]
    else:
        assert expected[:3] in (b"250", b"500", b"552")
        assert got.startswith(b"552 5.3.4"), got


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 1 << 20], ids=lambda p: f"pieces of {p}")
def test_short_mails_end_and_read_as_aiosmtpd_reads_them(receiver, reference, piece):
    app, _ = receiver
    for name, wire in SHORT.items():
        _assert_alike(app, reference, wire, piece)


@pytest.mark.parametrize("name", list(LONG))
@pytest.mark.parametrize("piece", [997, 1 << 20], ids=lambda p: f"pieces of {p}")
def test_mails_at_and_past_the_limits_end_and_read_as_aiosmtpd_reads_them(receiver, reference, name, piece):
    app, _ = receiver
    _assert_alike(app, reference, LONG[name], piece)
