"""The IMAP poller against a real private Dovecot: store, then flag or move; IDLE; dedupe; outages."""

from __future__ import annotations

import logging
import os
import signal
import smtplib
import time
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage

import pytest
import sqlalchemy
from sqlalchemy import func, select

from ingest.imap import DATABASE_RETRY_SECONDS, Poller, fetch_batches
from ingest.smtp import Receiver
from tests.conftest import PG_ADMIN_URL, write_config
from tests.daemon import DaemonProcess
from tests.dovecot import Dovecot, dovecot, dovecot_factory  # noqa: F401  (fixtures)
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import Cursor, load_cursor, save_cursor
from ticketd.store.imap_health import load_health
from ticketd.store.tables import raw_mail, tickets
from tests.waiting import eventually

pytestmark = pytest.mark.dovecot


def _mail(subject: str, message_id: str, body: str = "The printer is on fire.\n", trace: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Customer <cust@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return trace.encode() + msg.as_bytes(policy=policy.SMTP)


def _raw_count(app) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(raw_mail)).scalar_one()


def _ticket_subjects(app) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(tickets.c.subject).order_by(tickets.c.id)).scalars())


def _append(server: Dovecot, raw: bytes, folder: str = "INBOX", flags: tuple = ()) -> None:
    with server.client() as client:
        client.append(folder, raw, flags=flags)


def _flags(server: Dovecot, folder: str = "INBOX") -> dict[int, set[bytes]]:
    """UID -> flags of every message in `folder`, read without changing anything."""
    with server.client() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        if not uids:
            return {}
        fetched = client.fetch(uids, ["FLAGS"])
    # \Recent is the server's session bookkeeping (RFC 3501 2.3.2), not ours.
    return {uid: set(data[b"FLAGS"]) - {b"\\Recent"} for uid, data in fetched.items()}


@contextmanager
def _polling(app, box=None):
    poller = Poller(app, box or app.settings.imap[0])
    poller.start()
    try:
        yield poller
    finally:
        began = time.monotonic()
        poller.stop()
        stopped_in = time.monotonic() - began
        assert not poller._thread.is_alive()
        assert stopped_in < 3, f"stop() took {stopped_in:.1f}s"


@contextmanager
def _raw_mail_locked(postgres_url: str):
    """Hold raw_mail so the poller waits inside its INSERT, until the block ends."""
    name = postgres_url.rsplit("/", 1)[1]
    blocker = sqlalchemy.create_engine(postgres_url)
    observer = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with blocker.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE raw_mail IN EXCLUSIVE MODE")
            with observer.connect() as watch:
                def inserting():
                    return watch.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %(db)s"
                        " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO raw_mail%%'",
                        {"db": name}).scalar_one() == 1
                yield inserting
    finally:
        blocker.dispose()
        observer.dispose()


def _send_by_smtp(app, msg: EmailMessage) -> None:
    """The mail through the real receiver, as the MTA's SMTP route hands it in."""
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            assert client.send_message(msg) == {}
    finally:
        receiver.stop()


def _polled_once(app) -> bool:
    """The poller has selected the folder and saved its cursor."""
    return load_cursor(app.engine, app.settings.imap[0].key) is not None


def test_appended_mail_becomes_ticket_and_is_flagged_only_after_commit(make_app, db_url, dovecot):
    app = make_app(db_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2))
    _append(dovecot, _mail("Printer on fire", "<fire@client.example.org>"))
    assert _flags(dovecot) == {1: set()}

    with _polling(app):
        # The moment the server shows \Seen, the raw mail must already be committed.
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1], step=0.01)
        assert _raw_count(app) == 1

    with app.engine.connect() as conn:
        row = conn.execute(select(raw_mail)).mappings().one()
    assert row["source"] == "imap"
    assert row["mailbox"] == app.settings.imap[0].key
    assert row["message_id"] == "fire@client.example.org"
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Printer on fire"]


def test_oversized_mail_stays_unseen_and_does_not_hold_up_the_mail_after_it(make_app, sqlite_url, dovecot, caplog):
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2, max_message_bytes=4000))
    _append(dovecot, _mail("Huge scan", "<huge@client.example.org>", body="x" * 70 + "\n" * 100 + "y" * 5000))
    _append(dovecot, _mail("Small question", "<small@client.example.org>"))
    with caplog.at_level(logging.WARNING, logger="ticketd.imap"), _polling(app):
        assert eventually(lambda: b"\\Seen" in _flags(dovecot).get(2, set()))
        assert eventually(lambda: load_cursor(app.engine, app.settings.imap[0].key).last_uid == 2)
        _append(dovecot, _mail("Later question", "<later@client.example.org>"))
        assert eventually(lambda: b"\\Seen" in _flags(dovecot).get(3, set()))
    assert _flags(dovecot)[1] == set()          # kept on the server, for a person
    assert _raw_count(app) == 2                 # fetched once each, the big one never
    assert drain(app) == 2
    assert _ticket_subjects(app) == ["Small question", "Later question"]
    warnings = [r.getMessage() for r in caplog.records if "over max_message_bytes" in r.getMessage()]
    assert len(warnings) == 1 and "uid 1 is" in warnings[0] and "(4000)" in warnings[0]


def test_fetch_batches_bound_the_bytes_of_one_fetch_and_leave_out_oversized_mail():
    sizes = {1: 3, 2: 3, 3: 9, 4: 2, 5: 2, 6: 20, 7: 1}
    assert fetch_batches([1, 2, 3, 4, 5, 6, 7], sizes, max_message=10, max_batch=6) == [[1, 2], [3], [4, 5, 7]]
    assert fetch_batches([8, 9], {}, max_message=10, max_batch=6) == [[8, 9]]   # expunged meanwhile: no size
    assert fetch_batches([6], sizes, max_message=10, max_batch=6) == []


@pytest.mark.parametrize("capability", [None, "IMAP4rev1 IDLE UIDPLUS", "IMAP4rev1 IDLE"],
                         ids=["move", "copy-uid-expunge", "copy-expunge"])
def test_move_to_folder_after_commit(make_app, sqlite_url, dovecot_factory, capability):
    # Without MOVE (RFC 6851) the poller copies, flags \Deleted and expunges.
    server = dovecot_factory(f"imap_capability = {capability}" if capability else "")
    with server.client() as client:
        assert (b"MOVE" in client.capabilities()) == (capability is None)
    app = make_app(sqlite_url, extra=server.settings_yaml(move_to="Processed"))
    _append(server, _mail("Refund please", "<refund@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: _flags(server) == {})
    assert [flags for flags in _flags(server, "Processed").values()] == [{b"\\Seen"}]
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Refund please"]


def test_tls_without_verification_takes_mail(make_app, sqlite_url, dovecot_factory):
    server = dovecot_factory(tls=True)  # imaps with a self-signed certificate
    app = make_app(sqlite_url, extra=server.settings_yaml(ssl=True, ssl_verify=False))
    _append(server, _mail("Over TLS", "<tls@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: b"\\Seen" in _flags(server)[1])


def test_tls_verification_refuses_untrusted_certificate(make_app, sqlite_url, dovecot_factory, caplog):
    server = dovecot_factory(tls=True)
    app = make_app(sqlite_url, extra=server.settings_yaml(ssl=True, ssl_verify=True))
    _append(server, _mail("Not to an impostor", "<verify@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, timeout=3)
    assert _raw_count(app) == 0
    assert _flags(server) == {1: set()}
    assert "test-password" not in caplog.text


def test_starttls_takes_mail_over_the_plain_port(make_app, sqlite_url, dovecot_factory):
    server = dovecot_factory(starttls=True)   # port 143 style: login only after STARTTLS
    app = make_app(sqlite_url, extra=server.settings_yaml(ssl=False, starttls=True, ssl_verify=False))
    _append(server, _mail("Over STARTTLS", "<starttls@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: b"\\Seen" in _flags(server)[1])
    logins = [line for line in server.log.splitlines() if "Login: user=<support>" in line]
    assert len(logins) >= 2 and all("TLS" in line for line in logins)   # ours and the test's own


def test_starttls_refuses_a_server_without_it_and_never_sends_the_password(make_app, sqlite_url, dovecot,
                                                                          caplog):
    # A plaintext-only server (or a man in the middle stripping STARTTLS).
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(ssl=False, starttls=True, ssl_verify=False))
    _append(dovecot, _mail("Not in clear", "<clear@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: "STARTTLS" in caplog.text, timeout=3)
    assert _raw_count(app) == 0
    assert dovecot.log.count("Login: user=<support>") == 1   # the test's own append, not the poller


def test_idle_delivers_within_two_seconds(make_app, sqlite_url, dovecot):
    # poll_seconds is long: only IDLE can bring the mail in this fast.
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=True, poll_seconds=60))
    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        time.sleep(0.3)  # let it enter IDLE
        began = time.monotonic()
        _append(dovecot, _mail("Idle mail", "<idle@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 1, timeout=2, step=0.02)
        took = time.monotonic() - began
    assert took < 2
    assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1], timeout=2)


def test_the_idle_connection_has_tcp_keepalive_so_a_silently_dead_link_is_noticed(make_app, sqlite_url, dovecot):
    import socket

    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=True, poll_seconds=60))
    with _polling(app) as poller:
        assert eventually(lambda: _polled_once(app))
        sock = poller._client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        # Found dead within idle + interval * count seconds.
        assert 30 + sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) * sock.getsockopt(
            socket.IPPROTO_TCP, socket.TCP_KEEPCNT) <= 60


def test_mail_arriving_during_a_round_is_not_left_for_later(make_app, postgres_url, dovecot):
    # Mail that lands while a round is busy is announced (EXISTS) in the reply
    # to one of the round's commands; IDLE does not announce it a second time.
    app = make_app(postgres_url, extra=dovecot.settings_yaml(poll_seconds=60))
    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        with _raw_mail_locked(postgres_url) as inserting:
            _append(dovecot, _mail("First", "<first@client.example.org>"))
            assert eventually(inserting)  # the round is stuck storing the first mail
            _append(dovecot, _mail("Second", "<second@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 2, timeout=3)


def test_second_delivery_and_second_run_store_once(make_app, sqlite_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.1))
    raw = _mail("Twice", "<twice@client.example.org>")
    _append(dovecot, raw)
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        # The same mail delivered again into the folder: fetched, recognised, flagged.
        _append(dovecot, raw)
        assert eventually(lambda: all(b"\\Seen" in f for f in _flags(dovecot).values()) and len(_flags(dovecot)) == 2)
        assert _raw_count(app) == 1

    # A second run, after someone marked everything unread again: the cursor
    # keeps it from fetching old UIDs (they stay unread), and nothing doubles.
    with dovecot.client() as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search("ALL"), [b"\\Seen"])
    with _polling(app):
        assert eventually(lambda: caplog.text.count("connected") == 2)
        time.sleep(0.5)  # several 0.1 s rounds
    assert _flags(dovecot) == {1: set(), 2: set()}
    assert _raw_count(app) == 1
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Twice"]


@pytest.mark.parametrize("move_to", [None, "Processed"], ids=["flag", "move"])
def test_new_mail_already_read_is_taken_because_the_cursor_says_what_is_new(make_app, sqlite_url, dovecot,
                                                                           caplog, move_to):
    # Read on a phone, or flagged \Seen by a Sieve rule, before the poller
    # got to it: above the cursor it is new mail all the same.
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2, move_to=move_to))

    def taken(uid):
        if move_to:
            return uid not in _flags(dovecot) and len(_flags(dovecot, move_to)) == uid
        return _flags(dovecot).get(uid) == {b"\\Seen"}

    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        _append(dovecot, _mail("Read on a phone", "<phone@client.example.org>"), flags=(b"\\Seen",))
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: taken(1))
    # Read while ticketd was down: the next run takes it too.
    _append(dovecot, _mail("Read in webmail", "<webmail@client.example.org>"), flags=(b"\\Seen",))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 2)
        assert eventually(lambda: taken(2))
    if move_to:
        assert _flags(dovecot) == {}
        assert list(_flags(dovecot, move_to).values()) == [{b"\\Seen"}, {b"\\Seen"}]
    else:
        assert _flags(dovecot) == {1: {b"\\Seen"}, 2: {b"\\Seen"}}   # still read
    assert load_cursor(app.engine, app.settings.imap[0].key).last_uid == 2
    for message_id in ("phone@client.example.org", "webmail@client.example.org"):
        assert f"Message-ID {message_id} was already \\Seen on the server" in caplog.text
    assert drain(app) == 2
    assert _ticket_subjects(app) == ["Read on a phone", "Read in webmail"]


@pytest.mark.parametrize("move_to", [None, "Processed"], ids=["flag", "move"])
def test_first_poll_leaves_the_read_mail_already_there(make_app, sqlite_url, dovecot, caplog, move_to):
    # A mailbox with years of read mail: the first poll takes only the unseen
    # mail, and the cursor goes past the read mail so no later poll takes it.
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2, move_to=move_to))
    _append(dovecot, _mail("Read last year", "<lastyear@client.example.org>"), flags=(b"\\Seen",))
    _append(dovecot, _mail("Still unread", "<unread@client.example.org>"))
    _append(dovecot, _mail("Read and answered", "<answered@client.example.org>"),
            flags=(b"\\Seen", b"\\Answered"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: _polled_once(app))
        with dovecot.client() as client:
            uidvalidity = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    assert "first poll under UIDVALIDITY" in caplog.text
    assert load_cursor(app.engine, app.settings.imap[0].key) == Cursor(uidvalidity, 3)
    # A second run does not take the read mail either.
    with _polling(app):
        assert eventually(lambda: caplog.text.count("connected") == 2)
        time.sleep(0.6)  # several 0.2 s rounds
    assert _raw_count(app) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.message_id)).scalar_one() == "unread@client.example.org"
    if move_to:
        assert _flags(dovecot) == {1: {b"\\Seen"}, 3: {b"\\Seen", b"\\Answered"}}   # left where they were
        assert list(_flags(dovecot, move_to).values()) == [{b"\\Seen"}]
    else:
        assert _flags(dovecot) == {1: {b"\\Seen"}, 2: {b"\\Seen"}, 3: {b"\\Seen", b"\\Answered"}}
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Still unread"]


def test_mail_taken_but_missing_from_the_cursor_is_not_taken_twice(make_app, sqlite_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        _append(dovecot, _mail("Only once", "<once@client.example.org>"))
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 1)
    assert _flags(dovecot) == {1: {b"\\Seen"}}
    # What a crash after commit and flag, before the cursor write, leaves:
    # the message stored and \Seen, the cursor still below it.
    save_cursor(app.engine, key, load_cursor(app.engine, key).uidvalidity, 0)
    with _polling(app):
        assert eventually(lambda: "once@client.example.org already stored as raw mail 1" in caplog.text)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 1)
    assert _raw_count(app) == 1
    assert "was already \\Seen" not in caplog.text   # recognised, not taken as new mail
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Only once"]


def test_first_poll_interrupted_still_takes_the_unseen_mail_read_meanwhile(make_app, postgres_url, dovecot,
                                                                         caplog):
    # The first poll listed the unseen mail; storing fails; a person reads the
    # mail before the poller is back. It was owed, so it is still taken.
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(postgres_url, extra=dovecot.settings_yaml(poll_seconds=60))
    _append(dovecot, _mail("Owed", "<owed@client.example.org>"))
    name = postgres_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    poller = Poller(app, app.settings.imap[0])
    try:
        with _raw_mail_locked(postgres_url) as inserting:
            poller.start()   # only now: the first poll must find raw_mail held
            assert eventually(inserting)
            with dovecot.client() as client:
                client.select_folder("INBOX")
                client.add_flags([1], [b"\\Seen"])
            with admin.connect() as conn:   # the poller's INSERT fails
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(db)s"
                    " AND query LIKE 'INSERT INTO raw_mail%%'", {"db": name})
            assert eventually(lambda: "the database is out of reach" in caplog.text, timeout=3)
        assert eventually(lambda: _raw_count(app) == 1, timeout=6)
        assert eventually(lambda: _polled_once(app))
    finally:
        poller.stop()
        admin.dispose()
    assert not poller._thread.is_alive()
    assert load_cursor(app.engine, app.settings.imap[0].key).last_uid == 1
    assert drain(app) == 1
    assert _ticket_subjects(app) == ["Owed"]


def test_same_mail_by_smtp_and_imap_is_stored_once(make_app, sqlite_url, dovecot):
    app = make_app(sqlite_url, extra=dovecot.settings_yaml())
    msg = EmailMessage()
    msg["From"] = "Customer <cust@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Both routes"
    msg["Message-ID"] = "<both@client.example.org>"
    msg.set_content("Sent once, delivered twice.\n")
    _send_by_smtp(app, msg)
    assert _raw_count(app) == 1

    # The mailbox copy went through other MTAs: its own trace headers, LF vs CRLF.
    trace = ("Return-Path: <cust@example.org>\r\nDelivered-To: support@example.com\r\n"
             "Received: from mx.example.com (mx.example.com [192.0.2.7]) by imap.example.com\r\n"
             "\twith ESMTPS id 4XyZ; Tue, 2 Jan 2024 10:00:00 +0000\r\n")
    _append(dovecot, trace.encode() + msg.as_bytes(policy=policy.SMTP))
    with _polling(app):
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1])
    assert _raw_count(app) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.source)).scalar_one() == "smtp"


def _tickets_messages_acks(app) -> tuple[int, int, int]:
    from ticketd.store.tables import messages, outbox

    with app.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (tickets, messages, outbox))


def test_same_mail_re_encoded_on_the_way_to_the_mailbox_is_one_message(make_app, sqlite_url, dovecot, caplog):
    """A relay without 8BITMIME made the mailbox's copy quoted-printable: another dedupe key, the same mail."""
    app = make_app(sqlite_url, rules="agents: []\nroutes: []\n", extra=dovecot.settings_yaml())

    def written(cte: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = "Zoë Müller <zoe@example.org>"
        msg["To"] = "support@example.com"
        msg["Subject"] = "Drucker brennt"
        msg["Date"] = "Tue, 02 Jan 2024 10:00:00 +0100"
        msg["Message-ID"] = "<reencoded@client.example.org>"
        msg.set_content("Der Drucker im Büro brennt – schon wieder.\nGrüße, Zoë\n", cte=cte)
        msg.add_attachment(b"%PDF-1.4 the error page", maintype="application", subtype="pdf",
                           filename="fehler.pdf")
        return msg

    as_sent, as_relayed = written("8bit"), written("quoted-printable")
    assert as_sent.as_bytes(policy=policy.SMTP) != as_relayed.as_bytes(policy=policy.SMTP)
    _send_by_smtp(app, as_sent)
    drain(app)
    assert _tickets_messages_acks(app) == (1, 1, 1)
    _append(dovecot, b"Received: from relay.example.net by imap.example.com; Tue, 2 Jan 2024 10:00:05 +0000\r\n"
            + as_relayed.as_bytes(policy=policy.SMTP))
    with _polling(app):
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1])
    with caplog.at_level(logging.INFO, logger="ticketd"):
        drain(app)
    assert _raw_count(app) == 2                                 # both kept, byte for byte
    assert _tickets_messages_acks(app) == (1, 1, 1)             # no second message, no second acknowledgement
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.source, raw_mail.c.state, raw_mail.c.ticket_id)
                            .order_by(raw_mail.c.id)).all() == [("smtp", "done", 1), ("imap", "done", 1)]
    assert "its bytes changed on the way: not added twice" in caplog.text


def test_changed_uidvalidity_does_not_reimport(make_app, sqlite_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    with dovecot.client() as client:
        client.create_folder("Support")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(folder="Support"))
    key = app.settings.imap[0].key
    # Mail read by a person before ticketd ever ran is history, not new mail.
    read = _mail("Read long ago", "<read@client.example.org>")
    _append(dovecot, read, "Support", flags=(b"\\Seen",))
    old = _mail("Old mail", "<old@client.example.org>")
    _append(dovecot, old, "Support")
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: b"\\Seen" in _flags(dovecot, "Support")[2])
    assert _raw_count(app) == 1
    before = load_cursor(app.engine, key)
    assert before.last_uid == 2
    # While ticketd is down the folder is rebuilt (a restore, a server move):
    # new UIDVALIDITY, the old mail back (one read, one unseen), one new mail.
    with dovecot.client() as client:
        client.delete_folder("Support")
        client.create_folder("Support")
        client.append("Support", read, flags=(b"\\Seen",))
        client.append("Support", old)
        client.append("Support", _mail("New mail", "<new@client.example.org>"))
        uidvalidity = client.folder_status("Support", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    assert uidvalidity != before.uidvalidity
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 2)
        assert eventually(lambda: all(b"\\Seen" in f for f in _flags(dovecot, "Support").values()))
        assert len(_flags(dovecot, "Support")) == 3
    assert load_cursor(app.engine, key).uidvalidity == uidvalidity
    assert "UIDVALIDITY changed" in caplog.text
    assert "old@client.example.org already stored as raw mail 1" in caplog.text
    assert drain(app) == 2
    assert _ticket_subjects(app) == ["Old mail", "New mail"]


def test_reconnects_after_server_restart_and_loses_nothing(make_app, sqlite_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        dovecot.stop()  # cuts the idling session
        assert eventually(lambda: "reconnecting" in caplog.text, timeout=3)
        dovecot.start()
        _append(dovecot, _mail("After the outage", "<outage@client.example.org>"))
        # Back-off: retries after 1 s, then 2 s; the server is back within one of them.
        assert eventually(lambda: _raw_count(app) == 1, timeout=8)
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1])
    assert caplog.text.count("connected") >= 2
    assert _raw_count(app) == 1
    assert drain(app) == 1


def test_connection_cut_between_commit_and_flag_refetches_once(make_app, postgres_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(postgres_url, extra=dovecot.settings_yaml(poll_seconds=60))
    with _polling(app):
        assert eventually(lambda: _polled_once(app))
        session = dovecot.session_pids()[-1]  # the poller's imap process
        # Another writer holds raw_mail, so the poller waits in its INSERT
        # with the fetched mail in hand; then its IMAP session dies.
        with _raw_mail_locked(postgres_url) as inserting:
            _append(dovecot, _mail("Cut off", "<cut@client.example.org>"))
            assert eventually(inserting)
            os.kill(session, signal.SIGKILL)
        # The lock is gone: the INSERT commits, the flag cannot be sent.
        assert eventually(lambda: _raw_count(app) == 1)
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1], timeout=6)
    assert "already stored as raw mail 1" in caplog.text  # fetched again and recognised
    assert _raw_count(app) == 1
    assert drain(app) == 1


def test_database_outage_leaves_mail_unseen_until_stored(make_app, postgres_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(postgres_url, extra=dovecot.settings_yaml(poll_seconds=60))
    name = postgres_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with _polling(app):
            assert eventually(lambda: _polled_once(app))
            # The database goes away under the poller: new connections are refused.
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            _append(dovecot, _mail("During the outage", "<dbdown@client.example.org>"))
            away = "cannot store mail: the database is out of reach"
            assert eventually(lambda: away in caplog.text, timeout=3)
            time.sleep(2.5 * DATABASE_RETRY_SECONDS)   # tried again meanwhile, and said once
            assert caplog.text.count(away) == 1 and "reconnecting" not in caplog.text
            assert _flags(dovecot) == {1: set()}  # not flagged: it was not stored
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1], timeout=2 * DATABASE_RETRY_SECONDS)
            # Said once the round that stored and flagged it is over, a moment after the flag.
            assert eventually(lambda: "the database takes mail again after" in caplog.text, timeout=5)
        assert _raw_count(app) == 1
        # The mailbox was never at fault: status does not count the database's outage against it.
        health = load_health(app.engine)[app.settings.imap[0].key]
        assert (health.failures, health.error, health.failing_since) == (0, None, None)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


def test_daemon_polls_imap_and_stops_promptly(tmp_path, sqlite_url, dovecot):
    """`ticketd run` with an imap: section turns mailbox mail into tickets."""
    config = write_config(tmp_path, sqlite_url, extra=dovecot.settings_yaml())
    daemon = DaemonProcess(config).start()
    try:
        _append(dovecot, _mail("Via the daemon", "<daemon@client.example.org>"))
        engine = sqlalchemy.create_engine(sqlite_url)
        try:
            def subjects():
                with engine.connect() as conn:
                    return list(conn.execute(select(tickets.c.subject)).scalars())
            assert eventually(lambda: subjects() == ["Via the daemon"], timeout=8), daemon.output()
        finally:
            engine.dispose()
        assert eventually(lambda: b"\\Seen" in _flags(dovecot)[1])
        began = time.monotonic()
        assert daemon.terminate(timeout=15) == 0
        assert time.monotonic() - began < 8
    finally:
        daemon.stop()


def test_cursor_saves_insert_then_update_on_both_databases(make_app, db_url):
    app = make_app(db_url)
    assert load_cursor(app.engine, "INBOX") is None
    save_cursor(app.engine, "INBOX", 7, 10)
    save_cursor(app.engine, "INBOX", 7, 12)
    assert load_cursor(app.engine, "INBOX") == Cursor(7, 12)
    save_cursor(app.engine, "INBOX", 8, 3)        # the server changed UIDVALIDITY
    save_cursor(app.engine, "Support", 1, 1)
    assert load_cursor(app.engine, "INBOX") == Cursor(8, 3)
    assert load_cursor(app.engine, "Support") == Cursor(1, 1)


def test_a_password_beyond_ascii_logs_in_by_sasl_plain_and_is_never_shown(make_app, sqlite_url, dovecot, caplog):
    """LOGIN carries ASCII only (imaplib named a character of the password and its place in the error)."""
    _append(dovecot, _mail("Umlauts in the password", "<utf8-login@client.example.org>"))
    password = "Pässwörd-2024"
    (dovecot.root / "passwd").write_text(f"{dovecot.user}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(password=f'"{password}"'))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
    assert "UnicodeEncodeError" not in caplog.text and "\\xe4" not in caplog.text


def test_a_restart_in_the_middle_of_a_first_look_goes_on_with_it(make_app, sqlite_url, dovecot, caplog):
    """Stopped while taking a backlog: what was unseen then, or arrived since, is taken even if read meanwhile."""
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    with dovecot.client() as client:
        for n in range(300):
            client.append("INBOX", _mail(f"Backlog {n}", f"<backlog-{n}@client.example.org>"))
        client.append("INBOX", _mail("Read history", "<history@client.example.org>"), flags=[b"\\Seen"])
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: _raw_count(app) >= 20, step=0.01)
    taken = _raw_count(app)
    assert 20 <= taken < 300, "the first look ended before the stop: nothing to go on with"
    owed = load_cursor(app.engine, key).owed
    assert len(owed) >= 300 - taken and 301 not in owed       # the read mail there is history, not owed
    with dovecot.client() as client:     # meanwhile a colleague reads the last five in webmail...
        client.select_folder("INBOX")
        client.add_flags([296, 297, 298, 299, 300], [b"\\Seen"])
        # ...and a mail arrives that a phone has already read
        client.append("INBOX", _mail("Arrived read", "<arrived@client.example.org>"), flags=[b"\\Seen"])
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 301, timeout=30)
        assert eventually(lambda: load_cursor(app.engine, key) == Cursor(load_cursor(app.engine, key).uidvalidity,
                                                                         302))
    assert caplog.text.count("first poll under UIDVALIDITY") == 1
    assert drain(app) == 301
    assert "Read history" not in _ticket_subjects(app) and "Arrived read" in _ticket_subjects(app)


def test_mail_over_the_limit_is_taken_once_the_limit_is_raised(make_app, sqlite_url, dovecot):
    big = _mail("Huge scan", "<huge2@client.example.org>", body="x" * 70 + "\n" * 100 + "y" * 5000)
    _append(dovecot, big)
    _append(dovecot, _mail("Small question", "<small2@client.example.org>"))
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2, max_message_bytes=4000))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1 and load_cursor(app.engine, key).last_uid == 2)
    assert load_cursor(app.engine, key).owed == (1,)
    raised = make_app(sqlite_url, extra=dovecot.settings_yaml(idle=False, poll_seconds=0.2))
    with _polling(raised):
        assert eventually(lambda: _raw_count(raised) == 2)
        assert eventually(lambda: load_cursor(raised.engine, key).owed == ())
    assert b"\\Seen" in _flags(dovecot)[1]
