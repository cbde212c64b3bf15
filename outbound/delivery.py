"""Deliver outbox rows: claim once, send, record the outcome; sweep what was left behind.

The database is the record; dramatiq (and Redis) only carry outbox ids. A
job delivered twice finds the row already claimed and does nothing, because
the claim is one conditional UPDATE made before connecting to the smarthost.
A job takes the due rows waiting behind its own along with it
(`ticketd.store.outbox.claim_due`), so under load one claim and one record
serve many mails.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from outbound.attachments import FileNotHere, fill_files
from outbound.outbox import queue_notices
from outbound.send import FAILED, RETRY, SENT, SendResult, send_raw
from ticketd.app import App
from ticketd.claimant import has_ended, this_process
from ticketd.clock import utcnow
from ticketd.domain.notices import delivery_failed_notice
from ticketd.store import outbox as outbox_store
from ticketd.store import tickets as store
from ticketd.store.db import is_transient, reading, unreachable
from ticketd.store.erase import referenced_files

log = logging.getLogger("ticketd.outbound")

MAX_BACKOFF_SECONDS = 6 * 3600


def backoff_seconds(base: float, attempts: int) -> float:
    """Exponential backoff after `attempts` tries, capped at six hours."""
    return min(base * 2 ** attempts, MAX_BACKOFF_SECONDS)


def lease_seconds(app: App) -> float:
    # One SMTP transaction is a handful of commands, each bounded by the
    # timeout; a claim older than this belongs to a worker that died.
    return 10 * app.settings.outbound.timeout_seconds


def deliver(app: App, outbox_id: int, stopping: threading.Event | None = None) -> str | None:
    """Send a due outbox row, and due rows behind it, over one connection; the row's new state, or None.

    None when there is nothing to do (the row was sent, is not due, or
    another job took it, maybe along with its own) or when the row stopped
    being this claim's while the mail was on the wire (`_record`: the sweep
    took it back, or its ticket was erased). One claim
    for up to CLAIM_BATCH rows (bench/README.md); each 250 is written as it
    comes (`_record_sent`), the rest of the outcomes together at the end.
    `stopping` set (the worker is shutting down, workers/actors.py): the
    mail on the wire is finished, the rows not tried yet are given back.
    """
    if outbox_id in _delivered(app):
        return None
    now = utcnow()
    with reading(app.engine) as conn:
        if not outbox_store.is_due(conn, outbox_id, now):
            return None
    with app.engine.begin() as conn:
        rows = outbox_store.claim_due(conn, outbox_id, now, this_process())
    if not rows:
        return None
    results = _send_in_turn(app, rows, stopping)
    states = _record(app, rows, results)
    for row in rows:
        if row["id"] not in results:   # given back untried: its own job may have come and gone
            app.enqueue("send_mail", (row["id"],))
    return states.get(outbox_id)


def _send_in_turn(app: App, rows: list[dict], stopping: threading.Event | None = None) -> dict[int, SendResult]:
    """Send claimed rows one after another; stops at the first that must wait for the smarthost's sake.

    A recipient greylisted or refused by the smarthost (RCPT answered 450
    or 550) is that row's outcome alone: the next rows still go.

    It also stops at half the claim's lease, so that no row is still being
    sent when the sweep would take it back (`lease_seconds`), and when the
    worker is stopping: the rows left are given back (`_record`) for the
    next worker now, not when their claim expires (up to the whole lease).
    """
    results: dict[int, SendResult] = {}
    deadline = time.monotonic() + lease_seconds(app) / 2
    for row in rows:
        if time.monotonic() > deadline or (stopping is not None and stopping.is_set()):
            break
        try:
            raw = fill_files(bytes(row["raw"]), row["message_id"], app.settings.attachments_dir,
                             lambda sha256: _still_named(app, sha256))
        except FileNotHere as exc:   # this host lacks the files: retried like a smarthost's 4xx
            results[row["id"]] = SendResult(RETRY, str(exc))
            continue
        result = send_raw(app.settings.outbound, app.settings.support_address, row["recipient"], raw)
        results[row["id"]] = result
        if result.outcome == SENT:
            _record_sent(app, row, result)
        elif result.outcome == RETRY and not result.mail_only:   # the smarthost's trouble, not one mailbox's
            break
    return results


def _record_sent(app: App, row: dict, result: SendResult) -> None:
    """A 250 is written at once, not with the batch's other results: a worker stopped or killed
    before the batch ends must not leave mail it delivered claimed, to be sent again when the
    claim expires. Only a mail delivered in the moment before the crash may go twice."""
    written = _while_reachable(app, row, result, lambda: _mark_sent(app, row))
    if written:
        _delivered(app).add(row["id"])
    log.info("outbox %s (Message-ID <%s>, ticket %s) sent to %s: %s", row["id"], row["message_id"],
             row["ticket_id"], row["recipient"], result.reply)
    if not written:
        log.warning("outbox %s was delivered, but the row was no longer this delivery's to record: its claim was "
                    "taken back (the lease expired) and another delivery recorded an outcome, so the recipient "
                    "may have it twice, or the row was erased with its ticket", row["id"])
    _wake_next(app, row)


# A job for a row that went in another job's claim finds it sent: under a burst most do (bench/drain.py
# --jobs: 1.4 jobs per mail, one claim per 11 mails), each with a read of its own (`is_due`; on
# PostgreSQL BEGIN, SELECT and ROLLBACK, three round trips). A recorded 250 is for good: a row never
# becomes unsent again under its id (ticketd/store/outbox.py, the claim), and ids are never reused
# (AUTOINCREMENT, an identity column). So a job for a row this process recorded sent returns at once,
# as the read would have it. Kept per engine (a database) and bounded: one forgotten is read again.
DELIVERED_KEPT = 4096


class _Delivered:
    """The ids of the latest DELIVERED_KEPT rows this process recorded sent to one database."""

    def __init__(self) -> None:
        self._ids: dict[int, None] = {}   # in the order recorded
        self._lock = threading.Lock()

    def __contains__(self, outbox_id: int) -> bool:
        return outbox_id in self._ids

    def add(self, outbox_id: int) -> None:
        """Remember a row recorded sent, forgetting the oldest beyond DELIVERED_KEPT."""
        with self._lock:
            self._ids[outbox_id] = None
            if len(self._ids) > DELIVERED_KEPT:
                del self._ids[next(iter(self._ids))]


_delivered_by_engine: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_delivered_lock = threading.Lock()


def _delivered(app: App) -> _Delivered:
    """The rows this process recorded sent to the app's database."""
    with _delivered_lock:
        return _delivered_by_engine.setdefault(app.engine, _Delivered())


def _mark_sent(app: App, row: dict) -> bool:
    with app.engine.begin() as conn:
        return outbox_store.mark_sent(conn, row["id"], utcnow())


# How long a 250 waits for the database to come back before its record is given up: a mail the
# smarthost took whose record is lost goes again when its claim expires, a duplicate for its reader.
RECORD_RETRY_FIRST_SECONDS = 0.2
RECORD_RETRY_MAX_SECONDS = 5.0


def _while_reachable(app: App, row: dict, result: SendResult, write: Callable[[], bool]) -> bool:
    """`write()`, tried again while the database is out of reach, for up to half the claim's lease."""
    deadline = time.monotonic() + lease_seconds(app) / 2
    delay = RECORD_RETRY_FIRST_SECONDS
    while True:
        try:
            return write()
        except Exception as exc:
            why = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
            if not (unreachable(exc) or is_transient(exc)) or time.monotonic() + delay > deadline:
                log.error("outbox %s (Message-ID <%s>, ticket %s) was taken by the smarthost (%s), but the database "
                          "did not record it (%s): it goes again when its claim expires, and %s may get it twice",
                          row["id"], row["message_id"], row["ticket_id"], result.reply, why, row["recipient"])
                raise
            log.warning("outbox %s was sent, and the database is out of reach (%s): recording it again in %.1f s",
                        row["id"], why, delay)
        time.sleep(delay)
        delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)


def _wake_next(app: App, row: dict) -> None:
    """The row behind this one in its line (ticket and recipient) may go now: enqueue it.

    Its own job may have found it held back (`ticketd.store.outbox` claims
    only the head of a line) and done nothing. Read after the outcome is
    committed: a row committed later has its own job, which finds the line free.
    """
    with reading(app.engine) as conn:
        waiting = outbox_store.next_in_line(conn, row["ticket_id"], row["recipient"], row["id"])
    if waiting is not None:
        app.enqueue("send_mail", (waiting,))


def _still_named(app: App, sha256: str) -> bool:
    """Whether an attachment row still names this file (it was not erased)."""
    with reading(app.engine) as conn:
        return bool(referenced_files(conn, {sha256}))


def _new_state(app: App, row: dict, result: SendResult) -> str:
    if result.outcome == SENT:
        return "sent"
    if result.outcome == FAILED or row["attempts"] >= app.settings.outbound.max_attempts:
        return "failed"
    return "pending"


def _record(app: App, rows: list[dict], results: dict[int, SendResult]) -> dict[int, str]:
    """Write what became of the claimed rows (sent, due again later, failed for good, not tried); the states
    written (none for a row whose claim was taken back mid-send, or that was erased meanwhile)."""
    now = utcnow()
    states = {r["id"]: _new_state(app, r, results[r["id"]]) for r in rows if r["id"] in results}
    tried = [r for r in rows if r["id"] in states]
    due_again = {r["id"]: now + timedelta(seconds=backoff_seconds(app.settings.outbound.retry_base_seconds,
                                                                  r["attempts"] - 1))
                 for r in tried if states[r["id"]] == "pending"}
    untried = [r for r in rows if r["id"] not in states]
    # Rows no longer this claim's: taken back by the sweep mid-send, or erased with their ticket.
    taken_back: set[int] = set()
    if untried or due_again:   # sent rows are written already (`_record_sent`)
        with app.engine.begin() as conn:
            outbox_store.release(conn, untried)
            for row in tried:
                if row["id"] in due_again and not outbox_store.mark_retry(
                        conn, row, results[row["id"]].reply, due_again[row["id"]]):
                    taken_back.add(row["id"])
    for row in tried:
        reply, state = results[row["id"]].reply, states[row["id"]]
        if state == "pending" and row["id"] not in taken_back:
            # An outage of the smarthost said once (outbound/send.py) covers the mails after the first.
            log.log(logging.DEBUG if results[row["id"]].outage_said else logging.WARNING,
                    "outbox %s (Message-ID <%s>, ticket %s) to %s deferred %.1fs after attempt %s: %s",
                    row["id"], row["message_id"], row["ticket_id"], row["recipient"],
                    (due_again[row["id"]] - now).total_seconds(), row["attempts"], reply)
        elif state == "failed":
            reason = reply if results[row["id"]].outcome == FAILED else (
                f"gave up after {row['attempts']} attempts; last reply: {reply}")
            if not _fail(app, row, reason, now):
                taken_back.add(row["id"])
    for outbox_id in taken_back:
        log.warning("outbox %s: %r not recorded, the row is no longer this delivery's: its claim was taken back "
                    "mid-send (the lease expired), or it was erased with its ticket", outbox_id,
                    results[outbox_id].reply)
        del states[outbox_id]
    return states


def _fail(app: App, row: dict, reason: str, now: datetime) -> bool:
    """Failed for good: record it on the ticket and tell the assigned agent, never in a loop; False when
    the row is no longer the claim's (`_record`) and nothing was written."""
    queued: list[int] = []
    with app.engine.begin() as conn:
        # The ticket first, as every writer of its outbox rows takes it: the
        # assignee's notice must not commit before mail queued ahead of it
        # (ticketd/store/outbox.py, the claim), nor this lock follow the row's.
        ticket = store.lock_ticket(conn, row["ticket_id"]) if row["ticket_id"] else None
        if not outbox_store.mark_failed(conn, row, reason):
            return False
        if ticket is not None:
            store.add_event(conn, ticket["id"], now, "system:outbound", "delivery_failed",
                            to_value=row["recipient"], reason=f"{row['template']}: {reason}")
            told = delivery_failed_notice(ticket["assignee"], ticket["id"], row["recipient"], row["template"], reason)
            if told is not None:
                queued = queue_notices(conn, app, [told], now)
    log.error("outbox %s (Message-ID <%s>, ticket %s) to %s failed: %s", row["id"], row["message_id"],
              row["ticket_id"], row["recipient"], reason)
    for outbox_id in queued:
        app.enqueue("send_mail", (outbox_id,))
    _wake_next(app, row)   # a mail that failed for good holds no line
    return True


def resend_after_seconds(sweep_seconds: float) -> float:
    """How long the sweep leaves a row it found a job for before it looks again (the first of its intervals)."""
    return max(5.0, 10 * sweep_seconds)


# The longest the sweep waits before making one more job for a row whose
# jobs vanish without sending it (held back in its line, or a job that
# raised in-process): a row's intervals double up to this.
RESEND_CAP_SECONDS = 15 * 60
DUE_LIMIT = 1000
ENDED_CLAIM = "claimed by %s, which ended before recording the outcome"


@dataclass
class _Swept:
    due_at: datetime   # the row's next_attempt_at when it was last seen with a job
    at: float          # time.monotonic() of that
    times: int         # jobs this process made for the row at this due_at (at least 1)


# Rows the sweep has seen with a job lately (per process), by (database, id).
_swept: dict[tuple[str, int], _Swept] = {}


def sweep_outbox(app: App, now: datetime | None = None, *, grace_seconds: float | None = None,
                 jobs_held: Callable[[], set[int] | None] | None = None) -> list[int]:
    """Recover crashed claims and enqueue due pending rows that can have lost their job; the ids enqueued.

    A claim is taken back when its process has certainly ended
    (ticketd/claimant.py: on this machine, killed mid-send) or, wherever
    that process ran, once the claim's lease has expired.

    A job waits in the queue as long as no worker takes it (none running, or
    all busy): enqueuing the row again every round would only pile copies
    onto the queue. So a row gets a new job when it has none: it is due for
    the first time in this process's sight (fresh after `grace_seconds`,
    deferred after an attempt, released from an expired claim), or
    `jobs_held` (the ids the broker holds a send_mail job for, None when it
    cannot tell: workers/sweeps.py looks into Redis) no longer lists it,
    looked at after the row's interval (`resend_after_seconds`, doubling up
    to RESEND_CAP_SECONDS with each job that vanished). Without `jobs_held`
    (the in-process queue) the interval alone decides.

    `grace_seconds` 0: every pending row now, for a sweep an admin's command
    asked for (its rows had no job enqueued; a second job for a row that has
    one finds it claimed or sent).
    """
    now = now or utcnow()
    expired_before = now - timedelta(seconds=lease_seconds(app))
    # A deferred or retried row (attempts > 0, or a last error) has no job
    # waiting: the sweep is its retry. A fresh row had one enqueued at commit; give it a moment
    # before calling it lost (Redis down or flushed, a crash before enqueue).
    if grace_seconds is None:
        grace_seconds = max(1.0, 2 * app.settings.sweep_seconds)
    grace = timedelta(seconds=grace_seconds)
    # Mostly there is nothing to recover: look first, so that an idle sweep
    # does not take SQLite's write lock every `sweep_seconds`.
    with reading(app.engine) as conn:
        claims = outbox_store.claims(conn)
        due = outbox_store.due_pending(conn, now, grace, limit=DUE_LIMIT)
    expired = any(oldest < expired_before for oldest in claims.values())
    ended = [claimant for claimant in claims if claimant is not None and has_ended(claimant)]
    orphaned: set[int] = set()   # their jobs sit in the dead worker's hands: enqueued anew below
    if expired or ended:
        with app.engine.begin() as conn:
            released = {claimant: outbox_store.release_claims_of(conn, claimant, ENDED_CLAIM % claimant)
                        for claimant in ended}
            recovered = outbox_store.release_expired_claims(conn, expired_before) if expired else 0
            due = outbox_store.due_pending(conn, now, grace, limit=DUE_LIMIT)
        for claimant, ids in released.items():
            if ids:
                log.warning("outbox rows %s were being sent by %s, which has ended: pending again (a mail on "
                            "the wire then may go twice)", ", ".join(map(str, ids)), claimant)
                orphaned.update(ids)
        if recovered:
            log.warning("%s outbox rows had expired claims and are pending again", recovered)
    db = app.settings.database_url
    if len(due) < DUE_LIMIT:   # all due rows are here: forget the ones sent or not due any more
        due_ids = {outbox_id for outbox_id, _ in due}
        for gone in [key for key in _swept if key[0] == db and key[1] not in due_ids]:
            del _swept[gone]
    mono = time.monotonic()
    first_interval = resend_after_seconds(app.settings.sweep_seconds)
    held: list[set[int] | None] = []   # looked up once per sweep, and only when a row needs it
    enqueued = []
    for outbox_id, due_at in due:
        seen = _swept.get((db, outbox_id))
        times = seen.times if seen is not None and seen.due_at == due_at else 0
        if outbox_id in orphaned:
            # Its job is in the ended process's hands, which the broker counts as held until its own
            # timeout (dramatiq's Redis broker: a minute without heartbeat): a new job now.
            times = 0
        elif times and mono - seen.at < min(first_interval * 2 ** (times - 1), RESEND_CAP_SECONDS):
            continue
        else:
            if not held:
                held.append(jobs_held() if jobs_held is not None else None)
            if held[0] is not None and outbox_id in held[0]:   # its job still waits, or is in a worker's hands
                _swept[(db, outbox_id)] = _Swept(due_at, mono, max(times, 1))
                continue
        # enqueue returns False when the broker is unreachable: try next round.
        if app.enqueue("send_mail", (outbox_id,)) is not False:
            _swept[(db, outbox_id)] = _Swept(due_at, mono, times + 1)
            enqueued.append(outbox_id)
    return enqueued
