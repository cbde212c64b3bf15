"""SQLite WAL checkpoints in a thread of their own, so that no commit pays for them."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger("ticketd.store")

# How often the WAL is copied into the database. SQLite's own automatic
# checkpoint ran inside the commit that filled 1000 pages (about 4 MB), and
# ticketd's writers hold the write queue until their COMMIT returns, so an
# acknowledged mail's commit could wait for one; at the ingest benchmark's
# rate 4 MB of WAL fill in about a second.
INTERVAL_SECONDS = 0.25


def checkpoint(engine: Engine) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: copy what no reader still needs, wait for nobody.

    (busy, frames in the WAL, frames copied), as `PRAGMA wal_checkpoint`
    answers. Run on a connection in autocommit: inside a transaction the
    checkpoint could not run.
    """
    raw = engine.raw_connection()
    try:
        return tuple(raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    finally:
        raw.close()


class Checkpointer:
    """Checkpoints an SQLite database every INTERVAL_SECONDS until stopped.

    Every ticketd connection turns automatic checkpoints off
    (`ticketd/store/db.py`); the back office of `ticketd run` runs this
    thread, outside the write queue: in WAL mode a checkpoint runs beside
    writers, so the receiver's commits only wait for other commits. Without
    a running daemon, SQLite checkpoints when the last connection closes.
    """

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                checkpoint(self.engine)
            except Exception:  # a full disk, a locked file: the next round tries again
                log.exception("WAL checkpoint failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            checkpoint(self.engine)  # leave a short WAL behind
        except Exception:
            log.exception("final WAL checkpoint failed")
