"""The queue ticketd's SQLite writers wait in: in-process, across processes, acknowledgements first."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

# How long a writer waits for the write lock before giving up (then 451),
# the same as SQLite's busy timeout on every connection.
BUSY_TIMEOUT_SECONDS = 30


class WriteQueue:
    """The queue in front of SQLite's write lock, in this process and across processes.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so under
    load a waiting writer kept losing to others and an SMTP client waited
    seconds for 250. Writers of one process queue on a Python lock; the
    processes of one database (`ticketd run`, `ticketd worker`s, the CLI)
    then take an exclusive flock(2) on a file beside it, waiting in short
    steps, before BEGIN IMMEDIATE.

    Mail waiting for its 250 goes first: a processing batch that sees one
    waiting commits early and steps aside (`acknowledgement_waiting`,
    `let_acknowledgements_through`), so time to 250 is bounded by one
    mail's processing, not a batch's.
    """

    def __init__(self, lock_path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._depth = 0                     # the owner's nesting; only it touches this
        self._durable_waiting = 0
        self._count_lock = threading.Lock()
        self._lock_file = open(lock_path, "a+b") if lock_path else None  # noqa: SIM115 (lives with the engine)

    def acquire(self, durable: bool) -> None:
        if durable:
            with self._count_lock:
                self._durable_waiting += 1
        try:
            self._lock.acquire()
        finally:
            if durable:
                with self._count_lock:
                    self._durable_waiting -= 1
        if self._depth == 0 and self._lock_file is not None:
            try:
                _flock_within(self._lock_file, BUSY_TIMEOUT_SECONDS)
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock.release()

    @property
    def durable_waiting(self) -> bool:
        return self._durable_waiting > 0


def retry_while_locked(attempt: Callable[[], bool], what: str, *, first_delay: float, max_delay: float,
                       seconds: float = BUSY_TIMEOUT_SECONDS) -> None:
    """Call `attempt` until it returns True, sleeping between tries (doubling up to `max_delay`).

    After `seconds` it gives up with sqlite3.OperationalError, as SQLite's
    own busy timeout would (the receiver then answers 451).
    """
    deadline = time.monotonic() + seconds
    delay = first_delay
    while not attempt():
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"database is locked ({what})")
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _flock_within(file, seconds: float) -> None:
    """An exclusive flock(2) on `file`, waiting in steps of at most 5 ms."""
    def attempt() -> bool:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    retry_while_locked(attempt, "another ticketd process writes", first_delay=0.0005, max_delay=0.005,
                       seconds=seconds)


_WRITE_QUEUES: weakref.WeakKeyDictionary[Engine, WriteQueue] = weakref.WeakKeyDictionary()


def attach(engine: Engine, lock_path: Path | None) -> WriteQueue:
    """A new write queue for `engine` (lock file `lock_path`), found again by the helpers below."""
    queue = _WRITE_QUEUES[engine] = WriteQueue(lock_path)
    return queue


def acknowledgement_waiting(engine: Engine) -> bool:
    """Whether a commit of mail to acknowledge waits for this process's SQLite write lock."""
    queue = _WRITE_QUEUES.get(engine)
    return queue is not None and queue.durable_waiting


def let_acknowledgements_through(engine: Engine, timeout: float = 1.0) -> None:
    """After a commit: wait until the acknowledgements that were waiting hold the write lock.

    Python's locks are not fair: without this, the thread that just released
    the lock usually takes it again before a waiter wakes up.
    """
    deadline = time.monotonic() + timeout
    while acknowledgement_waiting(engine) and time.monotonic() < deadline:
        time.sleep(0.0002)
