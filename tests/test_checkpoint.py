"""WAL checkpoints: never inside a commit, always by the back office's checkpointer thread."""

from __future__ import annotations

import os
import time

from sqlalchemy import insert

from ticketd.clock import utcnow
from ticketd.daemon import build_back_office
from ticketd.store.checkpoint import Checkpointer, checkpoint
from ticketd.store.db import WAL_SIZE_LIMIT_BYTES, ensure_schema, make_engine
from ticketd.store.tables import raw_mail

MAIL = b"x" * 200_000  # about 50 pages of WAL per row


def _write(engine, rows: int, pause: float = 0.0) -> None:
    for i in range(rows):
        with engine.begin() as conn:
            conn.execute(insert(raw_mail), dict(
                received_at=utcnow(), source="smtp", envelope_to="[]", dedupe_key=f"k{time.time_ns()}-{i}",
                size=len(MAIL), raw=MAIL, state="done"))
        time.sleep(pause)


def _wal_bytes(path) -> int:
    return os.path.getsize(f"{path}-wal")


def test_commits_leave_the_wal_to_the_checkpointer(tmp_path):
    path = tmp_path / "ticketd.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    _write(engine, 40)   # 8 MB: SQLite's own checkpoint would have run at 4
    grown = _wal_bytes(path)
    assert grown > 8_000_000
    busy, frames, copied = checkpoint(engine)
    assert (busy, copied) == (0, frames) and frames * 4096 >= 8_000_000
    _write(engine, 5)    # a checkpointed WAL starts again from its beginning
    assert _wal_bytes(path) == grown
    engine.dispose()


def test_a_wal_grown_past_the_limit_is_cut_back_after_its_checkpoint(tmp_path):
    path = tmp_path / "ticketd.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    _write(engine, WAL_SIZE_LIMIT_BYTES // len(MAIL) + 10)   # a burst with no checkpoint
    assert _wal_bytes(path) > WAL_SIZE_LIMIT_BYTES
    busy, frames, copied = checkpoint(engine)
    assert (busy, copied) == (0, frames)
    _write(engine, 1)    # the log restarts from its beginning and the file is cut
    assert _wal_bytes(path) <= WAL_SIZE_LIMIT_BYTES
    engine.dispose()


def test_the_checkpointer_keeps_the_wal_short(tmp_path):
    path = tmp_path / "ticketd.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    checkpointer = Checkpointer(engine, interval=0.01)
    checkpointer.start()
    try:
        _write(engine, 40, pause=0.03)
    finally:
        checkpointer.stop()
    assert _wal_bytes(path) < 3_000_000   # 8 MB written, copied out as it came
    engine.dispose()


def test_the_back_office_checkpoints_sqlite_only(make_app, sqlite_url, postgres_url):
    kinds = {url: [type(c).__name__ for c in build_back_office(make_app(url))] for url in (sqlite_url, postgres_url)}
    assert "Checkpointer" in kinds[sqlite_url] and "Checkpointer" not in kinds[postgres_url]
