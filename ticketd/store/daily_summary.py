"""Daily summary queries: the agents' open tickets, the unassigned ones, their next timers, who already got theirs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, select

from ticketd.domain.statuses import Status
from ticketd.store.tables import outbox, tickets, timers

TEMPLATE = "agent/daily_summary"
_SUMMARY_LOCK = 0x64737572  # "dsur": one advisory lock id, the same in every ticketd process
_OPEN = [s.value for s in Status if s is not Status.CLOSED]
_COLUMNS = (tickets.c.id, tickets.c.subject, tickets.c.status, tickets.c.priority, tickets.c.requester,
            tickets.c.assignee, tickets.c.group_name, tickets.c.created_at, tickets.c.updated_at)


def open_tickets_of(conn: Connection, agents: Iterable[str]) -> dict[str, list[dict]]:
    """Each agent's open tickets (by the (assignee, status) index)."""
    found: dict[str, list[dict]] = defaultdict(list)
    for row in conn.execute(select(*_COLUMNS).where(tickets.c.assignee.in_(list(agents)),
                                                    tickets.c.status.in_(_OPEN))).mappings():
        found[row["assignee"]].append(dict(row))
    return found


def unassigned_in(conn: Connection, groups: Iterable[str], limit: int) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Per group, its oldest `limit` open unassigned tickets, and how many there are in all."""
    groups = list(groups)
    where = (tickets.c.group_name.in_(groups), tickets.c.assignee.is_(None), tickets.c.status.in_(_OPEN),
             tickets.c.merged_into.is_(None))
    totals = dict(conn.execute(select(tickets.c.group_name, func.count()).where(*where)
                               .group_by(tickets.c.group_name)).all())
    shown: dict[str, list[dict]] = defaultdict(list)
    for group in totals:
        rows = conn.execute(select(*_COLUMNS).where(*where, tickets.c.group_name == group)
                            .order_by(tickets.c.id).limit(limit)).mappings()
        shown[group] = [dict(r) for r in rows]
    return shown, totals


def next_timers(conn: Connection, ticket_ids: list[int]) -> dict[int, datetime]:
    """The earliest armed timer of each ticket that has one."""
    if not ticket_ids:
        return {}
    return dict(conn.execute(select(timers.c.ticket_id, func.min(timers.c.due_at))
                             .where(timers.c.ticket_id.in_(ticket_ids), timers.c.state == "armed")
                             .group_by(timers.c.ticket_id)).all())


def summarised_since(conn: Connection, agents: Iterable[str], since: datetime) -> set[str]:
    """Those of `agents` a summary was queued for at or after `since` (the outbox is the record).

    By the (recipient, created_at) index: a day's mail to the agents, not the whole outbox.
    """
    return set(conn.execute(select(outbox.c.recipient).where(outbox.c.recipient.in_(list(agents)),
                                                             outbox.c.created_at >= since,
                                                             outbox.c.template == TEMPLATE)).scalars())


def lock_summaries(conn: Connection) -> None:
    """Serialise the queueing of summaries across processes for this transaction.

    Every `ticketd run` and `ticketd worker` sweeps, and all of them find
    the summary due at the same moment. SQLite's write transaction is
    already the only one; PostgreSQL gets a transaction-scoped advisory
    lock, so the second process sees what the first queued.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SUMMARY_LOCK})")
