"""The receiver's limits: a mail's size as RFC 1870 counts it, and a stop that lets mail in flight finish."""

from __future__ import annotations

import smtplib
import socket
import threading
import time

import pytest
from sqlalchemy import create_engine, select

from ingest.smtp import Receiver, wire_limit
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.received import as_sent
from ticketd.store.tables import raw_mail

MAX = 10_000


def _smtp_settings(port: int, max_bytes: int = MAX) -> str:
    return f"smtp:\n  listen: 127.0.0.1:{port}\n  max_message_bytes: {max_bytes}\n"


def _mail_of(size: int, line: bytes = b". a line that starts with a dot\r\n", name: str = "limit") -> bytes:
    """A mail of exactly `size` bytes whose body lines all start with a dot (stuffed on the wire)."""
    head = (b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: Dotted lines\r\n"
            b"Message-ID: <" + name.encode() + b"@client.example.org>\r\n\r\n")
    room = size - len(head)
    count = (room - 3) // len(line)
    rest = room - count * len(line)                  # 3 or more: room for "." and CRLF
    mail = head + line * count + b"." + b"y" * (rest - 3) + b"\r\n"
    assert len(mail) == size
    return mail


def _stuffed(mail: bytes) -> bytes:
    """The mail as DATA carries it (RFC 5321 section 4.5.2), final dot included."""
    return (b"." if mail.startswith(b".") else b"") + mail.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _stored(engine) -> list[bytes]:
    with engine.connect() as conn:
        return [as_sent(bytes(raw)) for raw in conn.execute(select(raw_mail.c.raw).order_by(raw_mail.c.id))
                .scalars()]


def _reply(f) -> bytes:
    """One (possibly multi-line) SMTP reply from a socket file; b"" if the server closed."""
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def _session(port: int, *commands: bytes):
    """A raw client that has read the greeting and the replies to `commands`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    assert _reply(f).startswith(b"220")
    for command in commands:
        sock.sendall(command + b"\r\n")
        _reply(f)
    return sock, f


def _sender_in_data(port: int) -> smtplib.SMTP:
    """A smtplib client that has sent DATA and heard 354; the body is up to the test."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo()
    assert client.mail("cust@example.org")[0] == 250
    assert client.rcpt("support@example.com")[0] == 250
    assert client.docmd("DATA")[0] == 354
    return client


def _assert_greeted_421(port: int) -> None:
    """A connection opened while stopping is taken and greeted 421 (RFC 5321 sections 3.8, 4.2.2), not refused."""
    try:
        late = smtplib.SMTP("127.0.0.1", port, timeout=5)
    except smtplib.SMTPConnectError as err:
        assert err.smtp_code == 421
        assert err.smtp_error == b"example.com shutting down, try again later"
        return
    late.close()
    pytest.fail("a connection opened while stopping was served")


def _sender_in_transaction(port: int) -> smtplib.SMTP:
    """A smtplib client whose MAIL and RCPT were taken; DATA is up to the test."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo()
    assert client.mail("cust@example.org")[0] == 250
    assert client.rcpt("support@example.com")[0] == 250
    return client


@pytest.fixture
def small_receiver(make_app, db_url):
    app = make_app(db_url, extra=_smtp_settings(free_port()))
    receiver = Receiver(app)
    receiver.start()
    yield app, receiver
    receiver.stop()


@pytest.mark.parametrize("line", [b". a line that starts with a dot\r\n", b".\r\n"], ids=["dotted", "only-dots"])
def test_a_mail_of_exactly_the_limit_with_dotted_lines_is_taken_byte_exact(small_receiver, line):
    """SIZE counts the mail without its transparency dots (RFC 1870); "only-dots" is the most stuffing there is."""
    app, receiver = small_receiver
    mail = _mail_of(MAX, line)
    assert len(_stuffed(mail)) - 3 > MAX
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(MAX)
        # smtplib declares SIZE=len(mail) and stuffs the dots itself.
        assert client.sendmail("cust@example.org", ["support@example.com"], mail) == {}
    assert _stored(app.engine) == [mail]


@pytest.mark.parametrize("size", [MAX + 1, 3 * MAX], ids=["one-byte-over", "past-the-wire-bound"])
def test_a_mail_over_the_limit_gets_552_after_data_and_nothing_is_stored(small_receiver, size):
    app, receiver = small_receiver
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        assert client.mail("cust@example.org")[0] == 250     # no SIZE declared
        assert client.rcpt("support@example.com")[0] == 250
        code, said = client.data(_mail_of(size, name="over"))
        assert (code, said) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        # The session carries on: the next mail is taken.
        assert client.sendmail("cust@example.org", ["support@example.com"], _mail_of(MAX, name="next")) == {}
    assert _stored(app.engine) == [_mail_of(MAX, name="next")]


@pytest.mark.parametrize("size", [MAX * 6 // 5, wire_limit(MAX) - 10], ids=["a-fifth-over", "near-the-wire-bound"])
def test_a_mail_over_the_limit_with_bare_lf_line_ends_gets_552_not_500(small_receiver, size):
    """With LF line ends the whole mail is one line to SMTP: past the limit, aiosmtpd called it a line too
    long (500), a syntax error its sender bounces, instead of the mail being too big."""
    app, receiver = small_receiver
    mail = _mail_of(size, name="lf").replace(b"\r\n", b"\n")
    assert len(mail) > MAX
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        assert client.mail("cust@example.org")[0] == 250
        assert client.rcpt("support@example.com")[0] == 250
        assert client.data(mail) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert _stored(app.engine) == []


@pytest.mark.parametrize("declared", [MAX + 1, wire_limit(MAX), 10 * MAX])
def test_a_declared_size_over_the_limit_gets_552_at_mail_from(small_receiver, declared):
    app, receiver = small_receiver
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        code, said = client.mail("cust@example.org", options=[f"SIZE={declared}"])
        assert (code, said) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        code, _ = client.mail("cust@example.org", options=[f"SIZE={MAX}"])
        assert code == 250
    assert _stored(app.engine) == []


def test_stop_lets_a_mail_being_sent_finish_and_refuses_everything_else(make_app, sqlite_url):
    """Idle: 421 and closed; a transaction open: it ends, is stored, gets its 250, and its QUIT 221; new: 421."""
    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    port = receiver.port
    mail = _mail_of(200_000, name="in-flight")
    wire = _stuffed(mail)
    short = _mail_of(2_000, name="enveloped")
    stopping = threading.Thread(target=receiver.stop, kwargs={"body_grace": 20})
    try:
        sender = _sender_in_data(port)
        sender.send(wire[:50_000])
        enveloped = _sender_in_transaction(port)
        idle, idle_file = _session(port, b"EHLO idle.example.org")

        stopping.start()
        # The idle session is told unasked: the stop has begun.
        assert _reply(idle_file).startswith(b"421")
        assert _reply(idle_file) == b""                     # and closed
        _assert_greeted_421(port)

        # A transaction begun before the stop ends; a new one is refused and the session closed.
        assert enveloped.data(short)[0] == 250
        assert enveloped.mail("cust@example.org")[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            enveloped.noop()

        for start in range(50_000, len(wire), 30_000):       # the rest, slowly
            time.sleep(0.1)
            sender.send(wire[start:start + 30_000])
        code, reply = sender.getreply()
        assert code == 250, reply
        assert sender.quit()[0] == 221
        idle.close()

        stopping.join(10)
        assert not stopping.is_alive()
        assert sorted(_stored(app.engine)) == sorted([mail, short])
    finally:
        if stopping.ident is None:      # the test failed before the stop began
            receiver.stop()


def test_a_mail_still_arriving_after_the_grace_gets_421_and_is_not_stored(make_app, sqlite_url):
    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    sender = _sender_in_data(receiver.port)
    sender.send(_stuffed(_mail_of(5_000, name="stalled"))[:2_000])   # then the sender stalls
    started = time.monotonic()
    stopping = threading.Thread(target=receiver.stop, kwargs={"body_grace": 0.5})
    stopping.start()
    code, _ = sender.getreply()
    assert code == 421
    assert time.monotonic() - started < 5
    sender.close()
    stopping.join(10)
    assert not stopping.is_alive()
    assert _stored(app.engine) == []


def test_sigterm_lets_a_mail_being_sent_finish_and_exits_0(tmp_path, sqlite_url):
    port = free_port()
    config = write_config(tmp_path, sqlite_url, smtp_port=port)
    daemon = DaemonProcess(config).start()
    engine = create_engine(sqlite_url)
    mail = _mail_of(300_000, name="sigterm")
    wire = _stuffed(mail)
    other = _mail_of(40_000, name="sigterm-other")
    other_wire = _stuffed(other)
    try:
        sender = _sender_in_data(port)
        sender.send(wire[:10_000])
        second = _sender_in_data(port)
        second.send(other_wire[:10_000])
        idle, idle_file = _session(port, b"EHLO idle.example.org")

        daemon.proc.send_signal(15)
        assert _reply(idle_file).startswith(b"421")
        _assert_greeted_421(port)                             # listening while it drains, and saying why

        for start in range(10_000, len(wire), 20_000):        # about 1.5 s more of body
            time.sleep(0.1)
            sender.send(wire[start:start + 20_000])
        code, reply = sender.getreply()
        assert code == 250, reply
        assert sender.quit()[0] == 221                        # the session in flight ends as usual

        second.send(other_wire[10_000:])
        code, reply = second.getreply()
        assert code == 250, reply
        assert second.mail("cust@example.org")[0] == 421      # no new transaction
        second.close()
        idle.close()

        assert daemon.proc.wait(30) == 0
        assert sorted(_stored(engine)) == sorted([mail, other])
        complaints = [line for line in daemon.output().splitlines()
                      if "ticketd.smtp" in line and ("ERROR" in line or "WARNING" in line)]
        assert complaints == []
    finally:
        daemon.stop()
        engine.dispose()
