"""Attachment files no row names are swept away once older than a grace period; a mail's own files never are.

README "Erasure and retention": erased means gone, and data_dir does not
grow without bound. Earlier versions left files no attachment row names (a
quarantined mail's, a processing killed between writing its files and its
commit, mail to an agent's desk address); nothing ever removed them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

import pytest

from ingest.match import desk_address
from ingest.parse import dedupe_key
from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail, open_desk
from tests.sink import wait_until
from tests.test_erase import deliver, mail_bytes, rows
from ticketd.app import build_app
from ticketd.daemon import build_back_office
from ticketd.domain.erase import orphan_grace_seconds
from ticketd.erase import RetentionKeeper, sweep_unnamed_files
from ticketd.pipeline import process_raw
from ticketd.prepare import prepare
from ticketd.settings import load_settings
from ticketd.store import tables as t
from ticketd.store.db import make_engine
from ticketd.store.files import attachment_path, store_blob
from ticketd.store.inbox import load_raw, store_raw

DAY = 24 * 3600
NAMED = b"%PDF-1.4 the invoice a ticket holds\n"
ORPHAN = b"%PDF-1.4 the file of a mail quarantined by an earlier version\n"
YOUNG = b"%PDF-1.4 the file of a mail being processed right now\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(app, data: bytes, age: float) -> str:
    """A file under data_dir as processing writes it, last written `age` seconds ago; its sha256."""
    sha256 = _sha(data)
    path = store_blob(app.settings.attachments_dir, sha256, data)
    _age(path, age)
    return sha256


def _age(path, age: float) -> None:
    then = time.time() - age
    os.utime(path, (then, then))


def _on_disk(app, data: bytes) -> bool:
    return attachment_path(app.settings.attachments_dir, _sha(data)).exists()


def _starting_with(first: str, n: int) -> list[bytes]:
    """`n` distinct contents whose sha256 begins with `first`: files one slice of the sweep reads together."""
    found, i = [], 0
    while len(found) < n:
        data = b"file %d" % i
        if _sha(data).startswith(first):
            found.append(data)
        i += 1
    return found


def _stored_raw(app, data: bytes) -> int:
    raw = mail_bytes("cust@example.org", "Contract", "<waiting@client.example.org>", files=(("c.pdf", data),))
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                     envelope_to=["support@example.com"]).raw_id


def test_the_grace_is_a_day_or_ten_times_the_longest_preparation():
    assert orphan_grace_seconds(120) == DAY
    assert orphan_grace_seconds(36_000) == 360_000


def test_a_sweep_removes_the_old_files_no_row_names_and_says_so_once(make_app, db_url, caplog):
    app = make_app(db_url)
    deliver(app, mail_bytes("cust@example.org", "Invoice", "<n1@client.example.org>", files=(("i.pdf", NAMED),)))
    _age(attachment_path(app.settings.attachments_dir, _sha(NAMED)), 30 * DAY)
    _put(app, ORPHAN, 2 * DAY)
    _put(app, YOUNG, DAY - 600)
    temp = app.settings.attachments_dir / "ab" / ".tmp-left-by-a-killed-write"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"half a file")
    _age(temp, 2 * DAY)

    with caplog.at_level(logging.INFO, logger="ticketd.erase"):
        assert sweep_unnamed_files(app) == (2, len(ORPHAN) + len(b"half a file"))
        assert sweep_unnamed_files(app) == (0, 0)

    assert not _on_disk(app, ORPHAN) and not temp.exists()
    assert _on_disk(app, NAMED) and _on_disk(app, YOUNG)
    lines = [r.getMessage() for r in caplog.records if r.name == "ticketd.erase"]
    assert lines == [f"attachment files no row names: 2 removed, {len(ORPHAN) + 11} bytes"], lines


def test_a_sweep_goes_in_small_batches_and_stops_between_them(make_app, db_url):
    app = make_app(db_url)
    files = _starting_with("0", 5)   # the first slice the sweep reads
    for data in files:
        _put(app, data, 2 * DAY)
    stopped = threading.Event()
    stopped.set()

    assert sweep_unnamed_files(app, stop=stopped, files_per_batch=2)[0] == 2
    assert sum(_on_disk(app, data) for data in files) == 3
    assert sweep_unnamed_files(app, files_per_batch=2)[0] == 3


def test_a_file_of_a_mail_waiting_since_an_earlier_run_is_kept_once_prepared_again(make_app, db_url):
    # Processing was killed after writing the file, days ago; this start prepares the mail again.
    app = make_app(db_url)
    raw_id = _stored_raw(app, ORPHAN)
    [row] = load_raw(app.engine, [raw_id])
    prepare(app.settings, app.signer, row)
    _age(attachment_path(app.settings.attachments_dir, _sha(ORPHAN)), 3 * DAY)

    prepare(app.settings, app.signer, row)
    assert sweep_unnamed_files(app) == (0, 0)

    assert _on_disk(app, ORPHAN)
    assert process_raw(app, raw_id).ticket_id is not None


def test_the_keeper_runs_without_retention_and_sweeps_when_it_starts(make_app, db_url):
    app = make_app(db_url)
    assert not app.settings.retention.enabled
    assert [type(c) for c in build_back_office(app)].count(RetentionKeeper) == 1
    _put(app, ORPHAN, 2 * DAY)
    keeper = RetentionKeeper(app)
    keeper.start()
    try:
        wait_until(lambda: not _on_disk(app, ORPHAN))
    finally:
        keeper.stop()


def test_the_daemon_sweeps_at_start_while_it_processes_mail_left_from_before(tmp_path, db_url):
    config = write_config(tmp_path, db_url)
    app = build_app(load_settings(config, environ={}))
    try:
        raw_id = _stored_raw(app, NAMED)
        [row] = load_raw(app.engine, [raw_id])
        prepare(app.settings, app.signer, row)   # then killed before its commit
        _age(attachment_path(app.settings.attachments_dir, _sha(NAMED)), 3 * DAY)
        _put(app, ORPHAN, 2 * DAY)
    finally:
        app.engine.dispose()
    daemon = DaemonProcess(config).start()
    try:
        # The waiting mail's file goes too if the sweep comes before its preparing, which writes it again.
        wait_until(lambda: "attachment files no row names: " in daemon.output(), timeout=30)
        engine = make_engine(db_url)
        try:
            wait_until(lambda: [r["state"] for r in rows(_Engine(engine), t.raw_mail)] == ["done"], timeout=30)
        finally:
            engine.dispose()
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert _on_disk(app, NAMED) and not _on_disk(app, ORPHAN)
    assert "written again" not in daemon.output()


class _Engine:
    """What tests.test_erase.rows reads of an app: its engine."""

    def __init__(self, engine) -> None:
        self.engine = engine


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _to_desk(desk, data: bytes) -> None:
    address = desk_address(desk.app.signer, desk.app.settings.support_address, "alice@example.com")
    msg = build_mail("alice@example.com", "#away 2d\n", to=address, subject="away")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="signature.pdf")
    desk.send(msg)


def test_a_desk_mails_files_are_not_left_on_disk(desk):
    _to_desk(desk, ORPHAN)

    assert [r["state"] for r in desk.rows(t.raw_mail)] == ["done"]
    assert not _on_disk(desk.app, ORPHAN)


def test_a_desk_mails_file_a_ticket_also_holds_stays(desk):
    msg = build_mail("cust@example.org", "The invoice.\n", subject="Invoice")
    msg.add_attachment(NAMED, maintype="application", subtype="pdf", filename="invoice.pdf")
    desk.send(msg)

    _to_desk(desk, NAMED)

    assert _on_disk(desk.app, NAMED)
