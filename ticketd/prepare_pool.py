"""Prepare raw mail in worker processes, so parsing runs beside the daemon's interpreter, not in it.

`ticketd run` keeps the SMTP receiver, the processor's writes and the
workers in one interpreter; parsing, quote stripping and attachment files
were about a fifth of its time in a burst (bench/README.md, change 18).
A process of its own gives them the machine's other core, and the
processor writes one batch while the next is parsed.

A worker that dies (killed, out of memory) breaks the pool: the mails it
held are prepared again one at a time in a new pool, and a mail that kills
its worker a second time on its own is quarantined with that reason, so one
poisonous mail cannot stop the queue. A mail whose preparing takes longer
than `max_prepare_seconds` (a mail built to make a parser's time grow with
the square of its size) is treated alike: its worker is killed, it is tried
again alone, and quarantined if it overruns again. Preparing in the
processor thread (`prepare_processes: 0`) has no such bound.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from ticketd.domain.signing import Signer
from ticketd.logs import configure_logging
from ticketd.prepare import PendingBatch, Preparation, Prepared, prepare_or_reason
from ticketd.settings import Settings

log = logging.getLogger("ticketd.prepare")

DIED_ALONE = ("the process preparing this mail died twice, the second time with this mail alone "
              "(killed, or out of memory); `ticketd quarantine retry` tries again")


def took_too_long(seconds: float) -> str:
    """The quarantine reason of a mail whose preparing overran its time twice."""
    return (f"preparing this mail took over {seconds:g} s (max_prepare_seconds) twice, the second time alone; "
            "a mail built to slow a parser down looks so; `ticketd quarantine retry` tries again")


# The columns of a raw row that preparing reads: the rest stays in the daemon.
_ROW_KEYS = ("id", "raw", "envelope_from", "envelope_to")

_worker_context: tuple[Settings, Signer] | None = None  # set in each worker process


def _start_worker(settings: Settings, signer: Signer, parent_pid: int) -> None:
    global _worker_context
    # Ctrl-C and a terminal's hang-up reach the whole process group; the
    # daemon stops its pool itself. (SIGTERM stays: the pool uses it.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(settings.log_level)
    _worker_context = (settings, signer)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    # A daemon killed with SIGKILL cannot stop its pool, and a worker waiting
    # on the pool's queue would wait for ever: an orphan is re-parented, so
    # a changed parent means leave.
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(0)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's worker processes; the pool is broken then, and each of its mails is tried again."""
    # ProcessPoolExecutor has no public way to stop a running task before Python 3.14 (kill_workers).
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


def _ready() -> int:
    return os.getpid()


def _prepare_in_worker(row: dict) -> Preparation:
    settings, signer = _worker_context
    prepared = prepare_or_reason(settings, signer, row)
    if isinstance(prepared, Prepared):
        # The daemon has the raw bytes, and the attachments are on disk now:
        # sending either back would only cost copies.
        prepared = dataclasses.replace(prepared, raw=b"",
                                       parsed=dataclasses.replace(prepared.parsed, attachments=[]))
    return prepared


class ProcessPreparer:
    """A pool of `processes` worker processes that prepare raw rows (see `ticketd.prepare.Preparer`)."""

    def __init__(self, settings: Settings, signer: Signer, processes: int) -> None:
        self._settings = settings
        self._signer = signer
        self._processes = processes
        self._pool = self._new_pool()
        # Start the workers now, without waiting: their imports take a moment.
        self._pool.submit(_ready)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the daemon has threads holding locks.
        return ProcessPoolExecutor(max_workers=self._processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker,
                                   initargs=(self._settings, self._signer, os.getpid()))

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:
            log.warning("a preparing process died; starting a new one")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _submit(self, row: dict) -> tuple[ProcessPoolExecutor, Future]:
        pool = self._pool
        try:
            return pool, pool.submit(_prepare_in_worker, row)
        except BrokenProcessPool:
            self._replace_pool(pool)
            return self._pool, self._pool.submit(_prepare_in_worker, row)

    def submit(self, rows: list[dict]) -> PendingBatch:
        portable = [{key: (bytes(row[key]) if key == "raw" else row[key]) for key in _ROW_KEYS} for row in rows]
        return _PoolBatch(self, [(row, *self._submit(row)) for row in portable])

    def wait(self, row: dict, pool: ProcessPoolExecutor, future: Future) -> Preparation:
        """The preparation of `row`; its worker killed when it overruns max_prepare_seconds."""
        seconds = self._settings.max_prepare_seconds
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            log.error("raw mail %s: preparing it took over %g s; stopping the preparing processes", row["id"],
                      seconds)
            _kill_workers(pool)
            raise BrokenProcessPool("preparing overran max_prepare_seconds") from None

    def again_alone(self, row: dict, broken: ProcessPoolExecutor) -> Preparation:
        """Prepare `row` by itself in a new pool, after `broken` died under it or overran its time."""
        self._replace_pool(broken)
        # The new process's start (its imports take a moment) is no part of the mail's time.
        try:
            self._pool.submit(_ready).result()
        except BrokenProcessPool:
            pass   # it died starting: submitting below starts another
        pool, future = self._submit(row)
        started = time.monotonic()
        try:
            return self.wait(row, pool, future)
        except BrokenProcessPool:
            self._replace_pool(pool)
            if time.monotonic() - started >= self._settings.max_prepare_seconds:
                return took_too_long(self._settings.max_prepare_seconds)
            log.error("raw mail %s killed the preparing process twice", row["id"])
            return DIED_ALONE

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _PoolBatch:
    def __init__(self, preparer: ProcessPreparer, jobs: list[tuple[dict, ProcessPoolExecutor, Future]]) -> None:
        self._preparer = preparer
        self._jobs = jobs

    def result(self) -> list[tuple[int, Preparation]]:
        results = []
        for row, pool, future in self._jobs:
            try:
                prepared = self._preparer.wait(row, pool, future)
            except BrokenProcessPool:
                prepared = self._preparer.again_alone(row, pool)
            if isinstance(prepared, Prepared):
                prepared = dataclasses.replace(prepared, raw=row["raw"])
            results.append((row["id"], prepared))
        return results
