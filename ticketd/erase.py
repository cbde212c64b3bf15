"""Erase a ticket, a person, or what retention made due (GDPR Art. 17) in bounded transactions; then freed files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ticketd.clock import utcnow
from ticketd.domain.erase import (
    FILES_PER_BATCH,
    RAW_ROWS_PER_TRANSACTION,
    RETENTION_INTERVAL_SECONDS,
    TICKETS_PER_TRANSACTION,
    is_stored_file_name,
    is_temp_file_name,
    orphan_grace_seconds,
    outlived_grace,
    retention_cutoffs,
    spellings,
)
from ticketd.domain.statuses import Status
from ticketd.store import erase as store
from ticketd.store.db import admin_transaction, reading
from ticketd.store.erase import Erased
from ticketd.store.files import OnDisk, files_on_disk, put_back, set_aside, set_aside_by_the_dead
from ticketd.store.tickets import get_ticket
from ticketd.ticket_changes import set_status

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from ticketd.app import App

log = logging.getLogger("ticketd.erase")

__all__ = ["Erased", "RetentionKeeper", "erase_ticket", "forget", "retention_pass", "settle_interrupted_erasures",
           "summary", "sweep_unnamed_files"]

# Between two retention transactions: the processor and the workers, which
# queue on the same write lock, get their turn.
_PAUSE_SECONDS = 0.05


def summary(erased: Erased) -> str:
    """`messages 3, attachments 1, …`: the counts that are not zero, for the log and the terminal."""
    return ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in erased.counts().items() if n) or "nothing"


def _in_transaction(engine: Engine, work: Callable[[Connection, Erased], None], *, dry_run: bool = False) -> Erased:
    """Run `work` in one write transaction (engine.begin: SQLite's write queue); roll it back for a dry run."""
    def counted(conn: Connection) -> Erased:
        erased = Erased()   # afresh for each attempt
        work(conn, erased)
        # Counted before commit, where the deleted rows are already gone.
        erased.files_removed = len(erased.files - store.referenced_files(conn, erased.files))
        return erased

    return admin_transaction(engine, counted, dry_run=dry_run)


def _remove_files(engine: Engine, attachments_dir: Path, erased: Erased) -> None:
    """Unlink the attachment files of the erasure that no attachment row names (two tickets can share one).

    Each file is set aside before the rows are asked (`ticketd.store.files`),
    so a mail committed meanwhile with the same file either shows in the
    answer, and the file is put back, or finds the file gone after its own
    commit and writes it again.
    """
    if not erased.files:
        return
    settle_interrupted_erasures(engine, attachments_dir)
    aside = {sha256: path for sha256 in sorted(erased.files)
             if (path := set_aside(attachments_dir, sha256)) is not None}
    erased.files_removed = len(_settle(engine, attachments_dir, aside))


def remove_unnamed_files(engine: Engine, attachments_dir: Path, sha256s: set[str]) -> int:
    """Unlink those of these attachment files no attachment row names; how many.

    For the files of a mail whose processing failed: written before its
    transaction, they are named by no row once it is quarantined, and no
    erasure would ever find them (README "Erasure and retention"). A file
    another message has is left in place; one that looks unnamed is set
    aside and asked about again, as an erasure does (`_remove_files`), for
    a mail being processed meanwhile with the same file.
    """
    if not sha256s:
        return 0
    with reading(engine) as conn:
        unnamed = sha256s - store.referenced_files(conn, sha256s)
    aside = {sha256: path for sha256 in sorted(unnamed)
             if (path := set_aside(attachments_dir, sha256)) is not None}
    return len(_settle(engine, attachments_dir, aside)) if aside else 0


def _settle(engine: Engine, attachments_dir: Path, aside: dict[str, Path]) -> set[str]:
    """Put back the set-aside files a row names, unlink the others; the sha256s of those unlinked."""
    with reading(engine) as conn:
        kept = store.referenced_files(conn, set(aside))
    for sha256, path in aside.items():
        if sha256 in kept:
            put_back(attachments_dir, sha256, path)
        else:
            path.unlink(missing_ok=True)
    return set(aside) - kept


def settle_interrupted_erasures(engine: Engine, attachments_dir: Path) -> int:
    """At start: the files an erasure killed midway left set aside, put back or unlinked; how many there were."""
    aside = set_aside_by_the_dead(attachments_dir)
    if aside:
        removed = len(_settle(engine, attachments_dir, aside))
        log.warning("%d attachment file(s) left set aside by an interrupted erasure: %d put back, %d removed",
                    len(aside), len(aside) - removed, removed)
    return len(aside)


def erase_ticket(engine: Engine, attachments_dir: Path, ticket_id: int, why: str, *,
                 dry_run: bool = False) -> Erased | None:
    """Erase one ticket and everything stored for it in one transaction; None if there is no such ticket.

    A dry run counts what would go and changes nothing.
    """
    now = utcnow()
    erased = _in_transaction(engine, lambda conn, e: store.erase_ticket(conn, ticket_id, now, why, e),
                             dry_run=dry_run)
    if not erased.tickets:
        return None
    if not dry_run:
        _remove_files(engine, attachments_dir, erased)
        # No event can record it (the ticket is gone): this line is the audit record.
        log.info("ticket %s erased by %s: %s", ticket_id, why, summary(erased))
    return erased


def _one_snapshot(engine: Engine) -> Engine:
    """The engine whose transactions see the database as it was at their first read (PostgreSQL).

    `forget` reads which tickets are the person's, then takes their traces
    off every other ticket. At READ COMMITTED each statement sees what
    committed before it, so a ticket the daemon opened for them in between
    lost its requester and their words while it stayed, naming them. One
    snapshot leaves such a ticket whole, as if its mail came after; a row
    changed since the snapshot that the erasure must touch fails it with a
    serialization error, and admin_transaction runs it again. SQLite's
    writers take turns (BEGIN IMMEDIATE): nothing commits in between there.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="REPEATABLE READ")


def forget(engine: Engine, attachments_dir: Path, address: str, why: str, *, dry_run: bool = False,
           app: App | None = None) -> Erased:
    """Erase one person (lower-case `address`) in one transaction: their tickets, and their traces on others.

    `app` (its rules) plans the timers of another customer's ticket given
    back in the status it had before its merge; without it, that ticket stays closed.
    """
    now = utcnow()
    addresses = spellings(address)   # an internationalised domain is one mailbox in either form

    def work(conn: Connection, erased: Erased) -> None:
        theirs = sorted({t for a in addresses for t in store.tickets_requested_by(conn, a)})
        for ticket_id in theirs:
            # Before any of theirs goes: another customer's ticket merged into one of them keeps its words.
            given_back = store.return_merged(conn, ticket_id, set(addresses), now, why, erased)
            if app is not None:
                _reopen_given_back(conn, app, ticket_id, given_back, now, why)
        for ticket_id in theirs:
            store.erase_ticket(conn, ticket_id, now, why, erased)
        for spelled in addresses:
            store.erase_traces(conn, spelled, now, why, erased)

    erased = _in_transaction(_one_snapshot(engine), work, dry_run=dry_run)
    if not dry_run:
        _remove_files(engine, attachments_dir, erased)
        # The address itself is not logged: the log would keep what was erased.
        log.info("an address was forgotten by %s: tickets %s erased; %s", why,
                 ", ".join(map(str, erased.tickets)) or "none", summary(erased))
    return erased


def _reopen_given_back(conn: Connection, app: App, erased_id: int, given_back: dict[int, str], now: datetime,
                       why: str) -> None:
    """Each ticket given back in the status it goes back to, with that status's timers (rules.yaml).

    The merge closed it without an answer and cancelled its timers; left
    closed, the customer who asked for nothing would never be answered,
    reminded or told it closed (README "Erasure and retention").
    """
    for ticket_id, status in sorted(given_back.items()):
        ticket = get_ticket(conn, ticket_id)
        if status == ticket["status"]:
            continue
        set_status(conn, app, ticket, Status(status), now, actor="admin:cli", kind="status", row_id=None,
                   reason=f"[#{erased_id}], which it was merged into, was erased by {why}: "
                          f"back in the status it had before the merge")


# ---------------------------------------------------------------- files no row names


def sweep_unnamed_files(app: App, now: float | None = None, *, stop: threading.Event | None = None,
                        files_per_batch: int = FILES_PER_BATCH) -> tuple[int, int]:
    """Remove the attachment files no row names, written longer ago than the grace; (how many, bytes).

    Earlier versions left such files (a quarantined mail's, a processing
    killed before its commit, mail to a desk address), and no erasure finds
    them (README "Erasure and retention"). Read a sixteenth of data_dir at a
    time, they go in batches as an erasure's files do (`_settle`): set
    aside, the rows asked again, unlinked or put back. Nothing is written to
    the database.
    """
    root = app.settings.attachments_dir
    now = time.time() if now is None else now
    grace = orphan_grace_seconds(app.settings.max_prepare_seconds)
    files = total = 0
    for first in "0123456789abcdef":
        old = [f for f in files_on_disk(root, first) if outlived_grace(f.mtime, now, grace)]
        for temp in (f for f in old if is_temp_file_name(f.name)):   # a write killed midway: nothing renames it
            temp.path.unlink(missing_ok=True)
            files, total = files + 1, total + temp.size
        removed, size = _sweep_slice(app.engine, root, {f.name: f for f in old if is_stored_file_name(f.name)},
                                     files_per_batch, stop)
        files, total = files + removed, total + size
        if stop is not None and stop.is_set():
            break
    if files:
        log.info("attachment files no row names: %d removed, %d bytes", files, total)
    return files, total


def _sweep_slice(engine: Engine, root: Path, old: dict[str, OnDisk], files_per_batch: int,
                 stop: threading.Event | None) -> tuple[int, int]:
    """The sweep of `old`, files of one sixteenth of data_dir past the grace; (how many removed, bytes)."""
    if not old:
        return 0, 0
    names = sorted(old)
    with reading(engine) as conn:   # by name, through attachments_sha256, a batch of names a query
        named = set().union(*(store.referenced_files(conn, set(names[i:i + files_per_batch]))
                              for i in range(0, len(names), files_per_batch)))
    unnamed = [name for name in names if name not in named]
    files = total = 0
    for start in range(0, len(unnamed), files_per_batch):
        aside = {sha256: path for sha256 in unnamed[start:start + files_per_batch]
                 if (path := set_aside(root, sha256)) is not None}
        removed = _settle(engine, root, aside) if aside else set()
        files, total = files + len(removed), total + sum(old[sha256].size for sha256 in removed)
        if stop is not None and stop.wait(_PAUSE_SECONDS):
            break
    return files, total


# ---------------------------------------------------------------- retention


def retention_pass(app: App, now: datetime | None = None, *, stop: threading.Event | None = None,
                   tickets_per_transaction: int = TICKETS_PER_TRANSACTION,
                   raw_rows_per_transaction: int = RAW_ROWS_PER_TRANSACTION) -> Erased | None:
    """Erase what `retention` made due at `now`, in small transactions; None when retention is off.

    Off, it runs no query at all. Due rows are looked up without the write
    lock, then erased in transactions of at most `tickets_per_transaction`
    tickets or `raw_rows_per_transaction` raw mails, each checking again
    that its rows are still due (a reply may have reopened a ticket).
    """
    retention = app.settings.retention
    now = now or utcnow()
    cutoffs = retention_cutoffs(now, retention.closed_tickets_days, retention.raw_mail_days)
    if cutoffs.off:
        return None
    total = Erased()

    def stopping() -> bool:
        return stop is not None and stop.wait(_PAUSE_SECONDS)

    if cutoffs.closed_before is not None:
        closed_before = cutoffs.closed_before
        why = f"retention (closed_tickets_days: {retention.closed_tickets_days})"
        while True:
            with reading(app.engine) as conn:
                due = store.closed_tickets_due(conn, closed_before, tickets_per_transaction)
            if not due:
                break
            erased = _in_transaction(app.engine, lambda conn, e: [
                store.erase_ticket(conn, t, now, why, e, closed_before=closed_before) for t in due])
            _remove_files(app.engine, app.settings.attachments_dir, erased)
            total.absorb(erased)
            if len(due) < tickets_per_transaction or not erased.tickets or stopping():
                break
    if cutoffs.processed_before is not None and not (stop is not None and stop.is_set()):
        processed_before = cutoffs.processed_before
        why = f"retention (raw_mail_days: {retention.raw_mail_days})"
        after_id = 0
        while True:
            with reading(app.engine) as conn:
                due = store.raw_mail_due(conn, processed_before, after_id, raw_rows_per_transaction)
            if not due:
                break
            with app.engine.begin() as conn:
                total.raw_bytes_dropped += store.drop_raw_bytes(conn, due, processed_before, now, why)
            after_id = due[-1]
            if len(due) < raw_rows_per_transaction or stopping():
                break
    if any(total.counts().values()):
        log.info("retention pass: tickets %s erased; %s", ", ".join(map(str, total.tickets)) or "none",
                 summary(total))
    return total


class RetentionKeeper:
    """`ticketd run`'s keeping, at start and then about hourly: retention's pass, the sweep of files no row names.

    Built also with retention off: files no row names are no one's data.
    """

    def __init__(self, app: App, interval: float = RETENTION_INTERVAL_SECONDS) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                retention_pass(self.app, stop=self._stop)
            except Exception:   # the database is down: the next pass catches up
                log.exception("retention pass failed; trying again at the next one")
            try:
                sweep_unnamed_files(self.app, stop=self._stop)
            except Exception:   # the database is down, or data_dir unreadable: the next pass catches up
                log.exception("sweeping attachment files no row names failed; trying again at the next pass")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
