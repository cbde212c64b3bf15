"""`ticketd run`'s processes: receiver, back office, preparing pool; killed ones, priority between them."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

from ingest.parse import dedupe_key
from ticketd.app import build_app
from ticketd.pipeline import process_batch, write_batch
from ticketd.prepare import InlinePreparer, Prepared
from ticketd.prepare_pool import ProcessPreparer
from ticketd.settings import load_settings
from ticketd.store import inbox
from ticketd.store.db import durably, make_engine
from ticketd.store.inbox import RawMail, store_raw_batch
from ticketd.store.tables import raw_mail, tickets
from ticketd.store.write_queue import acknowledgement_waiting
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.waiting import eventually

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _mail(n: int, attachment: bytes | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"customer{n}@example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Printer {n} is out of toner"
    msg["Message-ID"] = f"<toner-{n}@example.org>"
    msg.set_content(f"Printer {n} prints blank pages.\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=f"log-{n}.bin")
    return msg


def _count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _spawned(pid: int) -> list[int]:
    """The multiprocessing children of `pid` that do work (not the resource tracker)."""
    return [c for c in _children(pid) if "resource_tracker" not in _command(c)]


def _back_office_and_preparer(daemon: DaemonProcess) -> tuple[int, int]:
    """The pids of a running `ticketd run`'s back office and its preparing process."""
    [back_office] = _spawned(daemon.proc.pid)
    assert eventually(lambda: len(_spawned(back_office)) == 1, timeout=20)
    [preparer] = _spawned(back_office)
    return back_office, preparer


def test_run_is_receiver_back_office_and_preparing_process_and_a_killed_preparer_loses_nothing(tmp_path):
    db = f"sqlite:///{tmp_path}/t.db"
    port = free_port()
    config = write_config(tmp_path, db, smtp_port=port)
    daemon = DaemonProcess(config).start()
    engine = make_engine(db)
    try:
        back_office, preparer = _back_office_and_preparer(daemon)

        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(_mail(1, attachment=b"\x00first log"))
        assert eventually(lambda: _count(engine, tickets) == 1, timeout=20)

        os.kill(preparer, signal.SIGKILL)
        with smtplib.SMTP("127.0.0.1", port) as client:
            for n in range(2, 12):
                client.send_message(_mail(n, attachment=f"log {n}".encode()))
        assert eventually(lambda: _count(engine, raw_mail, raw_mail.c.state == "done") == 11, timeout=30)
        assert _count(engine, raw_mail, raw_mail.c.state == "quarantined") == 0
        assert _count(engine, tickets) == 11
        [replacement] = _spawned(back_office)
        assert replacement != preparer
        assert "a preparing process died; starting a new one" in daemon.output()
    finally:
        assert daemon.terminate() == 0
        engine.dispose()
        daemon.stop()


def test_killed_daemon_leaves_no_process_behind(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")
    daemon = DaemonProcess(config).start()
    try:
        back_office, preparer = _back_office_and_preparer(daemon)
        daemon.kill()
        assert eventually(lambda: not _alive(back_office) and not _alive(preparer), timeout=15)
    finally:
        daemon.stop()


def test_back_office_that_dies_stops_the_daemon_with_exit_1(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")
    daemon = DaemonProcess(config).start()
    try:
        [back_office] = _spawned(daemon.proc.pid)
        os.kill(back_office, signal.SIGKILL)
        assert daemon.proc.wait(30) == 1
        assert "the back office exited (code -9); stopping" in daemon.output()
    finally:
        daemon.stop()


def test_process_preparer_gives_what_inline_preparing_gives(make_app, sqlite_url):
    app = make_app(sqlite_url)
    mails = [_mail(1, attachment=b"\x01\x02 binary"), _mail(2)]
    mails.extend(path.read_bytes() for path in sorted((CORPUS / "zammad").glob("*.box"))[:6])
    raws = [m if isinstance(m, bytes) else m.as_bytes() for m in mails]
    stored = store_raw_batch(app.engine, [RawMail(r, "smtp", *dedupe_key(r), "x@example.org", ["support@example.com"])
                                          for r in raws])
    rows = inbox.load_raw(app.engine, [s.raw_id for s in stored])
    inline = InlinePreparer(app.settings, app.signer).submit(rows).result()
    pool = ProcessPreparer(app.settings, app.signer, processes=2)
    try:
        pooled = pool.submit(rows).result()
    finally:
        pool.close()
    assert [i for i, _ in pooled] == [i for i, _ in inline] == [s.raw_id for s in stored]
    for (_, a), (_, b) in zip(inline, pooled):
        assert isinstance(a, Prepared) and isinstance(b, Prepared)
        assert b.raw == a.raw
        assert (b.stripped, b.attachments, b.robot_reason, b.envelope_to) == (
            a.stripped, a.attachments, a.robot_reason, a.envelope_to)
        assert (b.parsed.subject, b.parsed.text, b.parsed.from_addr) == (
            a.parsed.subject, a.parsed.text, a.parsed.from_addr)
    outcomes = write_batch(app, pooled)
    assert [o.quarantined for o in outcomes] == [None] * len(rows)
    assert all(o.ticket_id for o in outcomes)


def test_unreadable_mail_prepared_in_a_process_is_quarantined_with_the_reason(make_app, sqlite_url):
    app = make_app(sqlite_url)
    deep = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + b"".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode() for i in range(40))
    [stored] = store_raw_batch(app.engine, [RawMail(deep, "smtp", *dedupe_key(deep), None, [])])
    pool = ProcessPreparer(app.settings, app.signer, processes=1)
    try:
        [(raw_id, reason)] = pool.submit(inbox.load_raw(app.engine, [stored.raw_id])).result()
    finally:
        pool.close()
    assert raw_id == stored.raw_id
    assert isinstance(reason, str) and reason.startswith("MailTooComplex: mail refused by the MIME limits")
    [outcome] = write_batch(app, [(raw_id, reason)])
    assert outcome.quarantined == reason
    assert process_batch(app, [raw_id]) == []   # quarantined: not taken again


def test_a_mail_whose_preparing_overruns_its_time_is_quarantined_and_the_rest_go_on(make_app, sqlite_url):
    """Six megabytes of HTML paragraphs take seconds to make text of: with max_prepare_seconds 1 its worker
    is stopped, it is tried alone and overruns again, and the mails beside it are prepared as ever."""
    from ticketd.prepare_pool import took_too_long

    app = make_app(sqlite_url, extra="max_prepare_seconds: 1\n")
    html = "\r\n".join("<p>a</p>" * 8 for _ in range(6_000_000 // 64))
    slow = (b"From: Eve <eve@example.org>\r\nTo: support@example.com\r\nSubject: slow\r\n"
            b"Message-ID: <slow@example.org>\r\nContent-Type: text/html\r\n\r\n" + html.encode() + b"\r\n")
    raws = [_mail(1).as_bytes(), slow, _mail(2).as_bytes()]
    stored = store_raw_batch(app.engine, [RawMail(r, "smtp", *dedupe_key(r), "x@example.org", ["support@example.com"])
                                          for r in raws])
    pool = ProcessPreparer(app.settings, app.signer, processes=1)
    started = time.monotonic()
    try:
        prepared = pool.submit(inbox.load_raw(app.engine, [s.raw_id for s in stored])).result()
    finally:
        pool.close()
    assert time.monotonic() - started < 30   # two overruns of 1 s, a new process each time
    assert [i for i, _ in prepared] == [s.raw_id for s in stored]
    assert isinstance(prepared[0][1], Prepared) and isinstance(prepared[2][1], Prepared)
    assert prepared[1][1] == took_too_long(1)
    outcomes = write_batch(app, prepared)
    assert [o.quarantined for o in outcomes] == [None, took_too_long(1), None]


def test_acknowledgement_waiting_in_one_process_is_seen_by_another(tmp_path):
    # Two engines on one file have two write queues, as two processes do;
    # flock(2) locks belong to open files, so this is the cross-process path.
    settings = load_settings(write_config(tmp_path, f"sqlite:///{tmp_path}/t.db"), environ={})
    intake = build_app(settings).engine
    office = make_engine(settings.database_url)
    waiting_started = threading.Event()
    try:
        with office.begin() as conn:                   # the back office holds the write lock
            assert not acknowledgement_waiting(office)

            def acknowledge():
                waiting_started.set()
                with durably(intake) as c, c.begin():
                    c.exec_driver_sql("SELECT 1")

            writer = threading.Thread(target=acknowledge)
            writer.start()
            assert waiting_started.wait(5)
            assert eventually(lambda: acknowledgement_waiting(office), timeout=5)
            conn.exec_driver_sql("SELECT 1")
        writer.join(10)
        assert not writer.is_alive()
        assert not acknowledgement_waiting(office)
    finally:
        intake.dispose()
        office.dispose()


def test_sigterm_stops_all_three_processes_with_exit_0(tmp_path):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", smtp_port=port)
    daemon = DaemonProcess(config).start()
    try:
        back_office, preparer = _back_office_and_preparer(daemon)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(_mail(1))
        started = time.monotonic()
        assert daemon.terminate() == 0
        assert time.monotonic() - started < 30
        assert not _alive(back_office) and not _alive(preparer)
        assert "back office stopped" in daemon.output()
    finally:
        daemon.stop()
