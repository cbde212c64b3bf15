"""Nothing lost, nothing doubled: faults injected at the protocol around the receiver."""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from sqlalchemy import create_engine, func, select

from ingest.smtp import Receiver
from ticketd.store.tables import raw_mail, tickets
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.tcpproxy import TcpProxy
from tests.waiting import eventually


def _mail(n: int = 1) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "cust@example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Question {n}"
    msg["Message-ID"] = f"<q{n}@client.example.org>"
    msg.set_content(f"Question number {n}.\n")
    return msg


def _count(engine, table=raw_mail, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_disconnect_before_final_dot_leaves_nothing(make_app, sqlite_url):
    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    try:
        with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
            f = sock.makefile("rwb")
            f.readline()
            for line in (b"EHLO client", b"MAIL FROM:<cust@example.org>", b"RCPT TO:<support@example.com>",
                         b"DATA"):
                f.write(line + b"\r\n")
                f.flush()
                while True:
                    reply = f.readline()
                    if reply[3:4] != b"-":
                        break
            f.write(b"Subject: half\r\n\r\nthis mail never ends")
            f.flush()
            f.close()   # the socket closes only once its file is closed too: a real disconnect
        time.sleep(0.3)
        assert _count(app.engine) == 0
        # The receiver still serves the next client.
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.send_message(_mail())
        assert _count(app.engine) == 1
    finally:
        receiver.stop()


def _leave_after_the_dot(port: int, n: int) -> None:
    """Send mail `n` and reset the connection right after the final dot, before any answer can come."""
    import struct

    with socket.create_connection(("127.0.0.1", port)) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for line in (b"EHLO client", b"MAIL FROM:<cust@example.org>", b"RCPT TO:<support@example.com>", b"DATA"):
            f.write(line + b"\r\n")
            f.flush()
            while f.readline()[3:4] == b"-":   # a multi-line reply (EHLO) ends at its line without "-"
                pass
        f.write(_mail(n).as_bytes().replace(b"\n", b"\r\n") + b".\r\n")
        f.flush()
        f.close()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close with a RST


def test_senders_leaving_before_their_answer_do_not_stop_the_receiver(make_app, sqlite_url, caplog):
    """A client gone between its final dot and our 250 cancelled the future the commit thread then
    answered: the thread died, and every later mail waited for an answer that never came."""
    import sqlite3
    import threading

    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    caplog.set_level(logging.INFO, logger="ticketd")
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")   # another process's lock: the commit waits while the senders leave
        first = threading.Thread(target=_leave_after_the_dot, args=(receiver.port, 1))
        first.start()
        first.join()
        time.sleep(0.3)   # its batch is taken, and waits for the lock
        _leave_after_the_dot(receiver.port, 2)   # queued behind it, and given up while queued
        time.sleep(0.3)
        holder.execute("ROLLBACK")
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as client:
            assert client.send_message(_mail(3)) == {}
        assert eventually(lambda: _count(app.engine) == 3, timeout=10)   # every mail kept, as its retry would be
        assert "though its sender left before the answer" in caplog.text
        assert "Traceback" not in caplog.text and "InvalidStateError" not in caplog.text
    finally:
        holder.close()
        receiver.stop()


def test_database_unreachable_answers_451_then_accepts(make_app, postgres_url, caplog):
    """PostgreSQL behind a proxy we cut: the sender gets 451 (retry), never 5xx; the log tells the outage once."""
    url = postgres_url
    direct = create_engine(url)
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port)).start()
    app = make_app(url.replace(host_port, f"127.0.0.1:{proxy.port}"))
    receiver = Receiver(app)
    receiver.start()
    try:
        proxy.cut()
        app.engine.dispose()  # pooled connections die with the proxy
        caplog.set_level(logging.INFO, logger="ticketd")
        for _ in range(3):
            with smtplib.SMTP("127.0.0.1", receiver.port, timeout=60) as client:
                with pytest.raises(smtplib.SMTPDataError) as err:
                    client.send_message(_mail(1))
            assert err.value.smtp_code == 451
        proxy.restore()
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=60) as client:
            assert client.send_message(_mail(1)) == {}
        assert _count(direct) == 1
        # One warning for the outage, one line for each later 451, one when it ends: no traceback per mail.
        told = [(r.levelname, r.getMessage()) for r in caplog.records if "database" in r.getMessage()]
        assert [level for level, _ in told] == ["WARNING", "INFO", "INFO", "INFO"], told
        assert "out of reach" in told[0][1] and "refused" in told[0][1].lower(), told
        assert all("answered 451" in line for _, line in told[1:3]), told
        assert told[3][1].startswith("the database takes mail again after "), told
        assert not [r for r in caplog.records if r.exc_info], caplog.text
    finally:
        receiver.stop()
        proxy.cut()
        direct.dispose()


def test_killed_between_commit_and_250_then_retry_does_not_double(tmp_path, sqlite_url):
    """The 250 never reaches the client (the daemon dies first); the retry is harmless."""
    smtp_port = free_port()
    config = write_config(tmp_path, sqlite_url, smtp_port=smtp_port)
    daemon = DaemonProcess(config).start()
    proxy = TcpProxy("127.0.0.1", smtp_port).start()
    engine = create_engine(sqlite_url)
    try:
        client = smtplib.SMTP("127.0.0.1", proxy.port, timeout=5)
        client.ehlo()
        client.mail("cust@example.org")
        client.rcpt("support@example.com")
        proxy.mute_replies.set()  # from here on the client hears nothing back
        client.putcmd("data")
        time.sleep(0.3)
        client.send(_mail(7).as_bytes().replace(b"\n", b"\r\n") + b"\r\n.\r\n")
        assert eventually(lambda: _count(engine) == 1), "the mail was never committed"
        daemon.kill()  # SIGKILL: the 250 is lost with the process
        client.close()

        daemon = DaemonProcess(config).start()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as retry:
            code_ok = retry.send_message(_mail(7))
        assert code_ok == {}
        assert eventually(lambda: _count(engine, tickets) == 1)
        time.sleep(0.5)
        assert _count(engine) == 1
        assert _count(engine, tickets) == 1
    finally:
        proxy.cut()
        daemon.stop()
        engine.dispose()


def test_sigterm_refuses_new_mail_finishes_work_and_exits_0(tmp_path, sqlite_url):
    smtp_port = free_port()
    config = write_config(tmp_path, sqlite_url, smtp_port=smtp_port)
    daemon = DaemonProcess(config).start()
    engine = create_engine(sqlite_url)
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            for n in range(5):
                client.send_message(_mail(n))
            client.ehlo()
            daemon.proc.send_signal(15)
            time.sleep(0.2)
            code, _ = client.mail("late@example.org")
        assert code == 421
        assert daemon.proc.wait(30) == 0
        assert _count(engine) == 5
        # Everything accepted before the signal became a ticket before exit.
        assert _count(engine, raw_mail, raw_mail.c.state == "done") == 5
    finally:
        daemon.stop()
        engine.dispose()


def test_quarantine_keeps_mail_whole_and_retry_redrives_it(tmp_path, sqlite_url):
    """A mail past the MIME limits is quarantined with the reason, then re-driven by the CLI."""
    config = write_config(tmp_path, sqlite_url, extra="max_mime_depth: 3\n")
    from ticketd.app import build_app
    from ticketd.pipeline import drain
    from ticketd.settings import load_settings
    from ticketd.store.inbox import store_raw
    from ingest.parse import dedupe_key

    app = build_app(load_settings(config, environ={}))
    nested = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for depth in range(6):
        boundary = f"b{depth}".encode()
        nested = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary + b"\r\n"
                  + nested + b"\r\n--" + boundary + b"--\r\n")
    raw = b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n" + nested
    key, mid = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=mid)
    drain(app)
    cli = [sys.executable, "-m", "ticketd.cli"]
    listed = json.loads(subprocess.run([*cli, "quarantine", "list", "--json", "--config", str(config)],
                                       capture_output=True, text=True, check=True).stdout)
    assert [q["id"] for q in listed] == [stored.raw_id]
    assert "MIME nesting deeper than 3" in listed[0]["reason"]
    assert listed[0]["size"] == len(raw) and listed[0]["message_id"] == "deep@x"
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.raw).where(raw_mail.c.id == stored.raw_id)).scalar_one() == raw

    # The admin raises the limit and re-drives the mail.
    config.write_text(config.read_text().replace("max_mime_depth: 3", "max_mime_depth: 20"))
    done = subprocess.run([*cli, "quarantine", "retry", str(stored.raw_id), "--config", str(config)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "processed: ticket 1" in done.stdout
    assert _count(app.engine, tickets) == 1
    app.engine.dispose()


def test_killed_in_the_middle_of_a_burst_every_mail_becomes_a_ticket_once(tmp_path, db_url):
    """SIGKILL while four clients send, then a restart: clients retry what got no 250 (as MTAs do);
    every mail is stored once, processed once, replies still thread, one acknowledgement each."""
    import threading

    from ticketd.store.tables import messages, outbox

    smtp_port = free_port()
    config = write_config(tmp_path, db_url, smtp_port=smtp_port)
    daemon = DaemonProcess(config).start()
    engine = create_engine(db_url)
    clients, per_client = 4, 50
    deadline = time.monotonic() + 120

    def mail(c: int, n: int) -> EmailMessage:
        msg = _mail(c * 1000 + n)
        del msg["From"]      # one customer per conversation (the hourly cap is per address)
        msg["From"] = f"cust{c}-{n - 1 if n % 5 == 4 else n}@example.org"
        if n % 5 == 4:       # every fifth mail answers the client's previous one
            del msg["Subject"]
            msg["Subject"] = f"Re: Question {c * 1000 + n - 1}"
            msg["In-Reply-To"] = f"<q{c * 1000 + n - 1}@client.example.org>"
        return msg

    def client(c: int) -> None:
        for n in range(per_client):
            while time.monotonic() < deadline:   # until a 250, like a sending MTA's queue
                try:
                    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
                        smtp.send_message(mail(c, n))
                    break
                except (smtplib.SMTPException, OSError):
                    time.sleep(0.2)

    senders = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    try:
        for t in senders:
            t.start()
        assert eventually(lambda: _count(engine) >= clients * per_client // 3, timeout=60)
        daemon.kill()                 # SIGKILL mid-burst: no clean stop, work in flight is cut
        daemon = DaemonProcess(config).start()
        for t in senders:
            t.join(timeout=130)
        total = clients * per_client
        assert eventually(lambda: _count(engine, raw_mail, raw_mail.c.state == "done") == total, timeout=60)
        assert _count(engine) == total                             # nothing doubled
        assert _count(engine, tickets) == total - total // 5       # the replies joined their tickets
        with engine.connect() as conn:
            matched = dict(conn.execute(select(messages.c.matched_by, func.count()).where(
                messages.c.direction == "in").group_by(messages.c.matched_by)).all())
            acks_per_ticket = conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.template == "requester/ticket_opened").group_by(outbox.c.ticket_id)).scalars().all()
        assert matched == {"new": total - total // 5, "references": total // 5}
        assert len(acks_per_ticket) == total - total // 5 and set(acks_per_ticket) == {1}
    finally:
        daemon.stop()
        engine.dispose()
