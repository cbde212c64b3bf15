"""Merge one ticket into another (`ticketd tickets merge`) in one write transaction, or count what it would move."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ticketd.clock import utcnow
from ticketd.store import merge as store
from ticketd.store.db import admin_transaction
from ticketd.store.merge import Merged, MergeRefused

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("ticketd.merge")

__all__ = ["MergeRefused", "Merged", "merge"]


def merge(engine: Engine, source_id: int, into_id: int, *, dry_run: bool = False) -> Merged:
    """Merge SOURCE into INTO in one transaction (engine.begin: SQLite's write queue); MergeRefused if it may not.

    A dry run counts what would move and changes nothing.
    """
    now = utcnow()
    merged = admin_transaction(engine, lambda conn: store.merge_tickets(conn, source_id, into_id, now),
                               dry_run=dry_run)
    if not dry_run:
        # The history of both tickets says it too; the log line is for whoever watches the daemon's.
        log.info("ticket %s merged into ticket %s: %s", source_id, into_id, merged.summary())
    return merged
