"""Re-plan the armed timers under new rules (a reload, or a start after an edit): move, cancel, arm (docs/rules.md)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from ticketd.clock import iso, utcnow
from ticketd.domain.timer_replan import (
    Replan,
    TimerRow,
    Timing,
    adds_respond_clock,
    replan,
    rules_of_timing,
    statuses_retimed,
    timing_json,
    waiting_since,
)
from ticketd.domain.timers import WAITING_LOOKBACK
from ticketd.store import tickets as store
from ticketd.store import timers as timer_rows
from ticketd.store.db import admin_transaction, reading
from ticketd.store.read_models import latest_messages

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ticketd.app import App
    from ticketd.domain.rules import RuleSet

ACTOR = "system:rules"
EVENT = "timer_replanned"
# Tickets per transaction: a desk with thousands of open tickets never holds
# SQLite's write lock (or PostgreSQL's ticket locks) for long; each batch
# is whole, and a re-plan run again finds done what was done (idempotent).
BATCH = 200


@dataclass
class Replanned:
    """What one re-plan changed, as the reload's log line says it."""
    moved: int = 0
    cancelled: int = 0
    armed: int = 0
    due_now: bool = False   # a timer moved or armed into the past: it fires at the next sweep
    statuses: tuple[str, ...] = ()   # those whose timers fall due at other times

    def __str__(self) -> str:
        counts = f"{self.moved} moved, {self.cancelled} cancelled, {self.armed} armed"
        return counts + (f" (timers of {', '.join(self.statuses)})" if self.statuses
                         else " (no timer falls due at another time)")


def replan_timers(app: App, before: RuleSet, after: RuleSet) -> Replanned:
    """Bring the armed timers planned under `before` to `after`'s; what changed.

    Only the statuses whose timers fall due at other times are read. Safe
    beside a sweep firing (the ticket is locked first, as a firing locks it,
    and a timer is claimed only while armed and due) and beside another
    process re-planning the same change (it finds nothing left to do).
    """
    statuses = statuses_retimed(before, after)
    done = Replanned(statuses=statuses)
    if not statuses:
        _record(app, after)
        return done
    with reading(app.engine) as conn:
        ids = timer_rows.tickets_in(conn, statuses)
    for first in range(0, len(ids), BATCH):
        batch = ids[first:first + BATCH]
        # Counted once its transaction is through: a batch run again after a deadlock is counted once.
        counted = admin_transaction(app.engine, partial(_replan_batch, ids=batch, statuses=statuses, before=before,
                                                        after=after))
        done.moved += counted.moved
        done.cancelled += counted.cancelled
        done.armed += counted.armed
        done.due_now = done.due_now or counted.due_now
    # Only once every batch is through: a re-plan cut short is done again from `before` at the next start.
    _record(app, after)
    return done


def _record(app: App, rules: RuleSet) -> None:
    """Record in the database that the armed timers follow `rules` (what the next start compares with)."""
    with app.engine.begin() as conn:
        timer_rows.record_planned_under(conn, rules.digest, timing_json(rules), utcnow())


def rules_timers_follow(app: App) -> RuleSet | None:
    """The rules the armed timers were last planned under, if other than those in force; else None.

    A rules.yaml edited while ticketd was stopped (docs/rules.md): the
    timers re-plan from these. A database that recorded none yet (new, or
    from before ticketd recorded them) records the rules in force now.
    """
    with reading(app.engine) as conn:
        recorded = timer_rows.planned_under(conn)
    if recorded is None:
        _record(app, app.rules)
        return None
    digest, timing = recorded
    return rules_of_timing(timing, digest) if digest != app.rules.digest else None


def _replan_batch(conn: Connection, ids: list[int], statuses: tuple[str, ...], before: RuleSet,
                  after: RuleSet) -> Replanned:
    """Re-plan the tickets `ids` still in `statuses`, locked first; what changed."""
    now = utcnow()
    tickets = timer_rows.lock_tickets(conn, ids, statuses)
    entered = timer_rows.entered_status(conn, ids)
    rows: dict[int, list[TimerRow]] = defaultdict(list)
    for r in timer_rows.timers_of_current_status(conn, ids):
        rows[r["ticket_id"]].append(TimerRow(r["id"], r["kind"], r["state"], r["due_at"], r["created_at"],
                                             r["fired_at"]))
    counted = Replanned()
    for ticket in tickets:
        status = ticket["status"]
        # Whether the customer waits matters only to a respond clock the new rules add.
        waiting = (waiting_since(latest_messages(conn, ticket["id"], WAITING_LOOKBACK, 0)[0])
                   if adds_respond_clock(status, before, after) else None)
        change = replan(status, rows[ticket["id"]], Timing.of(before, status), Timing.of(after, status),
                        entered=entered.get(ticket["id"]), now=now, dev_due=ticket["dev_due"],
                        postponed_until=ticket["postponed_until"], customer_waiting_since=waiting)
        _apply(conn, ticket, change, now, after.digest, counted)
    return counted


def _apply(conn: Connection, ticket: dict, change: Replan, now: datetime, rules_hash: str,
           counted: Replanned) -> None:
    """Write one ticket's changes, each with its event in the ticket's history (PRODUCT.md "The lifecycle")."""
    tid, status = ticket["id"], ticket["status"]

    def event(from_value: datetime | None, to_value: datetime | None, reason: str) -> None:
        store.add_event(conn, tid, now, ACTOR, EVENT, from_value=iso(from_value), to_value=iso(to_value),
                        reason=reason, rules_hash=rules_hash)

    for row, due, what, start in change.moved:
        if timer_rows.move_timer(conn, row.id, due):
            event(row.due_at, due, f"{what}, counted from {iso(start)}: rules.yaml changed")
            counted.moved += 1
            counted.due_now = counted.due_now or due <= now
    for row, what in change.cancelled:
        if timer_rows.cancel_timer(conn, row.id, now):
            event(row.due_at, None, f"{what}: no longer in rules.yaml")
            counted.cancelled += 1
    for new in change.armed:
        timer_rows.arm_timer(conn, tid, new.kind, status, new.due_at, new.start)
        event(None, new.due_at, f"{new.what}, counted from {iso(new.start)}, {new.start_is}: added to rules.yaml")
        counted.armed += 1
        counted.due_now = counted.due_now or new.due_at <= now
