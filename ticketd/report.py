"""`ticketd report`: read the window's rows in one snapshot and build the desk's figures."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ticketd.clock import iso, utcnow
from ticketd.domain.report import build_report
from ticketd.store import report as rows
from ticketd.store.db import reading

if TYPE_CHECKING:
    from sqlalchemy import Engine


def desk_report(engine: Engine, days: int, agents: list[str]) -> dict:
    """The report over the last `days` days, JSON-ready (times ISO 8601 UTC, durations in seconds)."""
    now = utcnow()
    since = now - timedelta(days=days)
    with reading(engine) as conn:
        report = build_report(
            since, now, created=rows.created_since(conn, since), closed=rows.closed_since(conn, since),
            open_by_assignee=rows.open_by_assignee(conn), event_kinds=rows.event_kinds_since(conn, since),
            ratings=rows.ratings_since(conn, since), reactions=rows.reactions_since(conn, since), agents=agents)
    return {**report, "days": days, "since": iso(report["since"]), "until": iso(report["until"])}
