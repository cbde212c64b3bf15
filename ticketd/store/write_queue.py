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
# the same as SQLite's busy timeout on their connections (a command that
# only reads waits less: ticketd/store/locks.py).
BUSY_TIMEOUT_SECONDS = 30

# How long any other writer lets mail waiting for its 250 go first. One
# intake commit takes about 2 ms; under a flood of mail there is nearly
# always one waiting, and the back office must still move.
ACKNOWLEDGEMENTS_FIRST_SECONDS = 0.05


class WriteQueue:
    """The queue in front of SQLite's write lock, in this process and across processes.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so under
    load a waiting writer kept losing to others and an SMTP client waited
    seconds for 250. Writers of one process queue on a Python lock; the
    processes of one database (`ticketd run`'s receiver and its processing
    process, `ticketd worker`s, the CLI) then take an exclusive flock(2) on
    a file beside it, waiting in short steps, before BEGIN IMMEDIATE.

    Mail waiting for its 250 goes first: every other writer lets it
    through before queuing (for at most ACKNOWLEDGEMENTS_FIRST_SECONDS, so
    that a flood of mail cannot stop the rest), and a processing batch that
    sees one waiting commits early and steps aside
    (`acknowledgement_waiting`), so time to 250 is bounded by one mail's
    processing or one worker's transaction, not a batch's or a queue's.
    Across processes, such a writer holds a shared flock on a second file
    (`<lock>.priority`) until it has the write lock; the others see it by
    failing to take that file exclusively.
    """

    def __init__(self, lock_path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._depth = 0                     # the owner's nesting; only it touches this
        self._owner: int | None = None      # the thread holding the lock
        self._durable_waiting = 0
        self._count_lock = threading.Lock()
        self._lock_file = open(lock_path, "a+b") if lock_path else None  # noqa: SIM115 (lives with the engine)
        # Two open files: flock(2) locks belong to an open file, so the probe
        # must not share one with the shared lock it looks for.
        priority = Path(f"{lock_path}.priority") if lock_path else None
        self._priority_held = open(priority, "a+b") if priority else None  # noqa: SIM115
        self._priority_probe = open(priority, "a+b") if priority else None  # noqa: SIM115

    def acquire(self, durable: bool) -> None:
        if durable:
            self._durable_starts()
        elif self._owner != threading.get_ident():  # a nested transaction already holds it
            self.let_acknowledgements_through(ACKNOWLEDGEMENTS_FIRST_SECONDS)
        try:
            self._lock.acquire()
            if self._depth == 0 and self._lock_file is not None:
                try:
                    # A writer acknowledging mail polls in finer steps: it is
                    # the one an SMTP client waits for.
                    _flock_within(self._lock_file, BUSY_TIMEOUT_SECONDS, max_step=0.001 if durable else 0.005)
                except BaseException:
                    self._lock.release()
                    raise
        finally:
            if durable:
                self._durable_ends()
        self._depth += 1
        self._owner = threading.get_ident()

    def _durable_starts(self) -> None:
        with self._count_lock:
            self._durable_waiting += 1
            if self._durable_waiting == 1 and self._priority_held is not None:
                fcntl.flock(self._priority_held, fcntl.LOCK_SH)  # waits only for a probe's instant

    def _durable_ends(self) -> None:
        with self._count_lock:
            self._durable_waiting -= 1
            if self._durable_waiting == 0 and self._priority_held is not None:
                fcntl.flock(self._priority_held, fcntl.LOCK_UN)

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock.release()

    @property
    def durable_waiting(self) -> bool:
        """Whether a writer of mail to acknowledge waits, in this process or another."""
        if self._durable_waiting > 0:
            return True
        if self._priority_probe is None:
            return False
        try:
            fcntl.flock(self._priority_probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._priority_probe, fcntl.LOCK_UN)
        return False

    def let_acknowledgements_through(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) while a writer of mail to acknowledge waits.

        Python's locks are not fair, and across processes the flock is
        polled: without this, a writer of this process that wants the lock
        right after another released it usually gets it first.
        """
        deadline = time.monotonic() + timeout
        while self.durable_waiting and time.monotonic() < deadline:
            time.sleep(0.0002)


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


def _flock_within(file, seconds: float, max_step: float) -> None:
    """An exclusive flock(2) on `file`, waiting in steps of at most `max_step` seconds."""
    def attempt() -> bool:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    retry_while_locked(attempt, "another ticketd process writes", first_delay=0.0002, max_delay=max_step,
                       seconds=seconds)


_WRITE_QUEUES: weakref.WeakKeyDictionary[Engine, WriteQueue] = weakref.WeakKeyDictionary()


def attach(engine: Engine, lock_path: Path | None) -> WriteQueue:
    """A new write queue for `engine` (lock file `lock_path`), found again by the helpers below."""
    queue = _WRITE_QUEUES[engine] = WriteQueue(lock_path)
    return queue


def acknowledgement_waiting(engine: Engine) -> bool:
    """Whether a commit of mail to acknowledge waits for SQLite's write lock (any ticketd process)."""
    queue = _WRITE_QUEUES.get(engine)
    return queue is not None and queue.durable_waiting
