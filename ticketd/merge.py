"""Merge one ticket into another (`ticketd tickets merge`, `#merge`) in one write transaction, or count what it would
move; the customer's words it brings wait for an answer on the ticket they join."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ticketd.clock import utcnow
from ticketd.domain.statuses import Status
from ticketd.domain.timers import WAITING_LOOKBACK, WAITING_STATUSES, customer_waits
from ticketd.store import merge as store
from ticketd.store.db import admin_transaction
from ticketd.store.merge import Merged, MergeRefused
from ticketd.store.read_models import latest_messages
from ticketd.store.tickets import get_ticket
from ticketd.ticket_changes import set_status
from ticketd.timers import start_response_clock

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ticketd.app import App

log = logging.getLogger("ticketd.merge")

__all__ = ["MergeRefused", "Merged", "merge"]


def merge(app: App, source_id: int, into_id: int, *, dry_run: bool = False) -> Merged:
    """Merge SOURCE into INTO in one transaction (engine.begin: SQLite's write queue); MergeRefused if it may not.

    A dry run counts what would move and changes nothing.
    """
    now = utcnow()

    def work(conn: Connection) -> Merged:
        merged = store.merge_tickets(conn, source_id, into_id, now)
        customer_words_joined(conn, app, merged, now, actor=store.ACTOR, by=store.WHY)
        return merged

    merged = admin_transaction(app.engine, work, dry_run=dry_run)
    if not dry_run:
        # The history of both tickets says it too; the log line is for whoever watches the daemon's.
        log.info("ticket %s merged into ticket %s: %s", source_id, into_id, merged.summary())
    return merged


def customer_words_joined(conn: Connection, app: App, merged: Merged, now, *, actor: str, by: str) -> None:
    """After a merge: where the customer's words it brought are newer than any public reply on INTO, they wait
    for an answer there, as their mail to INTO would have (PRODUCT.md "The lifecycle").

    A waiting INTO (waiting_customer, solution_proposed) is open again, with
    the reason: its warn and close timers went on counting a silence that
    was no silence, and closed it "with no answer". An INTO in any other
    status but closed gets its respond clock, unless an unanswered one runs.
    A closed INTO stays closed (a merge reopens nothing).
    """
    into = get_ticket(conn, merged.into)
    if into["status"] == Status.CLOSED.value:
        return
    latest, _ = latest_messages(conn, merged.into, WAITING_LOOKBACK, 0)
    if not customer_waits(latest):
        return
    if into["status"] in WAITING_STATUSES:
        merged.reopened_from = into["status"]
        set_status(conn, app, into, Status.OPEN, now, actor=actor, kind="status", row_id=None,
                   reason=f"the customer's mail on [#{merged.source}], merged into this one by {by}, came after "
                          "the last public reply here")
    else:
        start_response_clock(conn, app, merged.into, into["status"], now)
