"""A mail whose files data_dir cannot take waits, in order, instead of being quarantined; then it flows."""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from ticketd.pipeline import ProcessingDeferred, drain
from ticketd.store.tables import attachments, messages, raw_mail, tickets
from ticketd.views import list_quarantine
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.waiting import eventually

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64


def _mail(sender: str, subject: str, mid: str, *, reply_to: str | None = None, with_file: bool = False):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, "support@example.com", subject, mid
    if reply_to:
        msg["In-Reply-To"] = msg["References"] = reply_to
    msg.set_content(f"{subject}, from {sender}.\n")
    if with_file:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg


def _block(app) -> None:
    """data_dir's attachments directory replaced by a file: every write under it fails in the OS (ENOTDIR)."""
    shutil.rmtree(app.settings.attachments_dir, ignore_errors=True)
    app.settings.attachments_dir.parent.mkdir(parents=True, exist_ok=True)
    app.settings.attachments_dir.write_text("not a directory\n")


def _states(app) -> dict[str, str]:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(raw_mail.c.message_id, raw_mail.c.state)).all())


def test_mail_whose_files_cannot_be_written_waits_and_so_does_what_came_after(receiver_app):
    app, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.send_message(_mail("other@example.org", "Password reset", "<other@x>"))
        client.send_message(_mail("cust@example.org", "Invoice wrong", "<invoice@x>", with_file=True))
        client.send_message(_mail("cust@example.org", "Re: Invoice wrong", "<reply@x>", reply_to="<invoice@x>"))
    _block(app)

    for _ in range(2):   # every pass meets it again, and changes nothing more
        with pytest.raises(ProcessingDeferred) as caught:
            drain(app)
        assert "its files cannot be written under" in str(caught.value)
        assert str(app.settings.attachments_dir) in str(caught.value)
        assert _states(app) == {"other@x": "done", "invoice@x": "received", "reply@x": "received"}
    assert list_quarantine(app.engine) == []
    with app.engine.connect() as conn:
        assert conn.execute(select(tickets.c.subject)).scalars().all() == ["Password reset"]

    app.settings.attachments_dir.unlink()   # the admin mends the disk
    assert drain(app) == 2
    assert set(_states(app).values()) == {"done"}
    with app.engine.connect() as conn:
        opened = conn.execute(select(tickets.c.id, tickets.c.subject).order_by(tickets.c.id)).all()
        assert [subject for _, subject in opened] == ["Password reset", "Invoice wrong"]
        # The reply waited behind its original, so it joined it rather than open a ticket of its own.
        thread = conn.execute(select(messages.c.message_id).where(messages.c.ticket_id == opened[1].id)
                              .order_by(messages.c.id)).scalars().all()
        assert thread == ["invoice@x", "reply@x"]
        sha = conn.execute(select(attachments.c.sha256)).scalar_one()
    from ticketd.store.files import attachment_path
    assert attachment_path(app.settings.attachments_dir, sha).read_bytes() == PDF


def test_quarantine_retry_of_a_mail_whose_files_cannot_be_written_says_it_waits(make_app, sqlite_url, tmp_path):
    app = make_app(sqlite_url, extra="max_mime_parts: 1\n")
    config = tmp_path / "ticketd.yaml"
    from ingest.parse import dedupe_key
    from ticketd.store.inbox import store_raw
    from tests.cli import cli_ok, run_cli

    stored = []
    for mail in (_mail("cust@example.org", "Invoice wrong", "<invoice@x>", with_file=True),
                 _mail("cust@example.org", "Re: Invoice wrong", "<reply@x>", reply_to="<invoice@x>", with_file=True)):
        raw = mail.as_bytes()
        stored.append(store_raw(app.engine, raw, source="smtp", dedupe_key=dedupe_key(raw)[0],
                                message_id=mail["Message-ID"].strip("<>")).raw_id)
    drain(app)
    assert [q["id"] for q in list_quarantine(app.engine)] == stored   # over the part limit

    config.write_text(config.read_text().replace("max_mime_parts: 1", "max_mime_parts: 100"))
    _block(app)
    retried = run_cli(config, "quarantine", "retry", "--all")
    assert retried.returncode == 1
    assert (f"mail {stored[0]} is out of quarantine and waits: its files cannot be written under "
            f"{app.settings.attachments_dir}: ") in retried.stderr
    # The reply is not retried ahead of its original: it stays in quarantine, named.
    assert f"the daemon takes it once that is mended; not retried, still in quarantine: {stored[1]}\n" \
        in retried.stderr
    assert [q["id"] for q in json.loads(cli_ok(config, "quarantine", "list", "--json"))] == [stored[1]]
    assert _states(app) == {"invoice@x": "received", "reply@x": "quarantined"}   # the daemon's next pass takes it

    app.settings.attachments_dir.unlink()
    app_after = make_app(sqlite_url, extra="max_mime_parts: 100\n")
    assert drain(app_after) == 1
    assert cli_ok(config, "quarantine", "retry", "--all") == f"mail {stored[1]} processed: ticket 1 (references)\n"
    assert _states(app) == {"invoice@x": "done", "reply@x": "done"}


def _process_tree(pid: int) -> list[int]:
    """`pid` and every process under it (the back office, its preparing processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue   # ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(parents.get(tree[-1], []))
    return tree


def _limit_file_size(pid: int, size: int) -> None:
    """RLIMIT_FSIZE on the running daemon: a write past `size` bytes fails with EFBIG, as on a disk that is full."""
    for each in _process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(each, resource.RLIMIT_FSIZE, (size, resource.prlimit(each, resource.RLIMIT_FSIZE)[1]))


@contextlib.contextmanager
def _daemon_with_a_full_disk(tmp_path, db_url, *mails: EmailMessage):
    """A real `ticketd run` whose writes past 1 MiB fail, handed `mails` over SMTP once it has met that
    limit: it and its engine, stopped and disposed after."""
    smtp_port = free_port()
    config = write_config(tmp_path, db_url, smtp_port=smtp_port)
    daemon = DaemonProcess(config).start()
    engine = create_engine(db_url)
    try:
        _limit_file_size(daemon.proc.pid, 1 << 20)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            for mail in mails:
                client.send_message(mail)
        assert eventually(lambda: "waits, and the mail after it" in daemon.output(), timeout=20), daemon.output()
        yield daemon, engine
    finally:
        daemon.stop()
        engine.dispose()


def _scan() -> EmailMessage:
    """A customer's mail with 2 MiB of file."""
    scan = _mail("cust@example.org", "Scan attached", "<scan@x>")
    scan.add_attachment(bytes(range(256)) * 8192, maintype="image", subtype="tiff", filename="scan.tiff")
    return scan


def test_daemon_holds_mail_while_data_dir_is_full_and_goes_on_by_itself(tmp_path, postgres_url):
    """On PostgreSQL (the database is not in data_dir): the running daemon meets the full disk, keeps the mail
    waiting in order, says so once, and makes the tickets once files can be written again, unasked."""
    reply = _mail("cust@example.org", "Re: Scan attached", "<again@x>", reply_to="<scan@x>")
    with _daemon_with_a_full_disk(tmp_path, postgres_url, _scan(), reply) as (daemon, engine):
        assert "[Errno 27] File too large" in daemon.output()
        time.sleep(2)   # several passes more: still waiting, said once, nothing shunted
        assert daemon.output().count("waits, and the mail after it") == 1
        assert _count_tickets(engine) == 0
        with engine.connect() as conn:
            assert set(conn.execute(select(raw_mail.c.state)).scalars()) == {"received"}

        _limit_file_size(daemon.proc.pid, resource.RLIM_INFINITY)   # room again
        assert eventually(lambda: "mail is made into tickets again" in daemon.output(), timeout=20), daemon.output()
        with engine.connect() as conn:
            ticket = conn.execute(select(tickets.c.id, tickets.c.subject)).one()
            assert ticket.subject == "Scan attached"
            assert conn.execute(select(messages.c.message_id).where(messages.c.ticket_id == ticket.id)
                                .order_by(messages.c.id)).scalars().all() == ["scan@x", "again@x"]
        assert daemon.terminate() == 0


def test_daemon_stopped_while_mail_waits_for_room_exits_cleanly_and_the_next_start_goes_on(tmp_path, postgres_url):
    with _daemon_with_a_full_disk(tmp_path, postgres_url, _scan()) as (daemon, engine):
        assert daemon.terminate() == 0
        assert "raw mail 1 and the mail after it wait for the next start: its files cannot be written" \
            in daemon.output()
        assert "Traceback" not in daemon.output()

        again = DaemonProcess(daemon.config).start()   # a start with room: it carries on from the raw table
        try:
            assert eventually(lambda: _count_tickets(engine) == 1, timeout=20), again.output()
            assert again.terminate() == 0
        finally:
            again.stop()


def _count_tickets(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tickets)).scalar_one()


def test_a_database_without_room_holds_the_mail_instead_of_quarantining_it(make_app, sqlite_url):
    """SQLite's own limit (PRAGMA max_page_count) makes the database full as a full disk does: SQLITE_FULL.
    The mail is not the cause, so it stays waiting, and is made a ticket once the database may grow.
    (PostgreSQL's disk_full, SQLSTATE 53100, takes the same path; no test fills its disk.)"""
    from sqlalchemy import event, func
    from sqlalchemy.exc import OperationalError

    from ingest.smtp import Receiver

    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            long = _mail("cust@example.org", "Invoice wrong", "<invoice@x>")
            long.set_content("Every line of the log they asked for.\n" * 5000)   # ~190 KB the ticket keeps
            client.send_message(long)
    finally:
        receiver.stop()

    def no_growth(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    app.engine.dispose()
    event.listen(app.engine, "connect", no_growth)
    with pytest.raises(OperationalError, match="database or disk is full"):
        drain(app)
    assert _states(app) == {"invoice@x": "received"} and list_quarantine(app.engine) == []

    event.remove(app.engine, "connect", no_growth)
    app.engine.dispose()
    assert drain(app) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 1


def test_out_of_room_is_told_apart_from_bad_data_on_both_databases(db_url):
    """Real errors: a database not allowed to grow (SQLite's max_page_count: SQLITE_FULL) or a session past
    its temp_file_limit (PostgreSQL: SQLSTATE 53400, class 53 as disk_full is) against a duplicate key."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from ticketd.store.db import out_of_resources

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (1, 'x')"))
        with pytest.raises(DBAPIError) as duplicate, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, 'x')"))
        assert not out_of_resources(duplicate.value)
        with pytest.raises(DBAPIError) as full, engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                pages = conn.execute(text("PRAGMA page_count")).scalar_one()
                conn.execute(text(f"PRAGMA max_page_count = {pages}"))
                conn.execute(text("INSERT INTO t VALUES (2, :body)"), {"body": "x" * 100_000})
            else:
                conn.execute(text("SET LOCAL work_mem = '64kB'"))
                conn.execute(text("SET LOCAL temp_file_limit = '64kB'"))
                conn.execute(text("SELECT md5(n::text) FROM generate_series(1, 200000) n ORDER BY 1")).all()
        assert out_of_resources(full.value), full.value
    finally:
        engine.dispose()
