"""Timer rows: arm, cancel, claim once, and the reads a firing needs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from ticketd.store.tables import messages, timers


def cancel_armed(conn: Connection, ticket_id: int, now: datetime) -> None:
    """Cancel every armed timer of the ticket."""
    conn.execute(update(timers).where(timers.c.ticket_id == ticket_id, timers.c.state == "armed")
                 .values(state="cancelled", fired_at=now))


# Built once, executed with parameters (see ticketd/store/tickets.py):
# processing arms and reads timers for every mail.
_INSERT_TIMER = insert(timers)
_ARMED_DUE_AT = select(timers.c.due_at).where(
    timers.c.ticket_id == bindparam("ticket_id"), timers.c.state == "armed", timers.c.kind == bindparam("kind"))


def arm_timers(conn: Connection, ticket_id: int, status: str, planned: Iterable[tuple[str, datetime]],
               now: datetime) -> None:
    """Insert one armed timer per (kind, due_at)."""
    conn.execute(_INSERT_TIMER, [dict(ticket_id=ticket_id, kind=kind, status=status, due_at=due_at,
                                      state="armed", created_at=now) for kind, due_at in planned])


def arm_timer(conn: Connection, ticket_id: int, kind: str, status: str, due_at: datetime, now: datetime) -> None:
    """Insert one armed timer."""
    arm_timers(conn, ticket_id, status, [(kind, due_at)], now)


def armed(conn: Connection, ticket_id: int) -> list[dict]:
    """The ticket's armed timers, soonest first."""
    rows = conn.execute(select(timers).where(timers.c.ticket_id == ticket_id, timers.c.state == "armed")
                        .order_by(timers.c.due_at)).mappings().all()
    return [dict(r) for r in rows]


def due_armed(conn: Connection, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(timer id, ticket id) of armed timers due by `now`, soonest first."""
    return conn.execute(
        select(timers.c.id, timers.c.ticket_id).where(timers.c.state == "armed", timers.c.due_at <= now)
        .order_by(timers.c.due_at, timers.c.id).limit(limit)
    ).all()


def claim_timer(conn: Connection, timer_id: int, now: datetime) -> dict | None:
    """Mark an armed timer fired (one conditional UPDATE); the row, or None if it was not armed."""
    claimed = conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.state == "armed")
                           .values(state="fired", fired_at=now))
    if claimed.rowcount != 1:
        return None
    return dict(conn.execute(select(timers).where(timers.c.id == timer_id)).mappings().one())


def armed_due_at(conn: Connection, ticket_id: int, kind: str) -> datetime | None:
    """When the ticket's armed timer of `kind` is due, if there is one."""
    return conn.execute(_ARMED_DUE_AT, dict(ticket_id=ticket_id, kind=kind)).scalar_one_or_none()


def agent_replied_since(conn: Connection, ticket_id: int, since: datetime) -> bool:
    """Whether an agent wrote on the ticket at or after `since`."""
    return conn.execute(
        select(messages.c.id).where(messages.c.ticket_id == ticket_id, messages.c.author_role == "agent",
                                    messages.c.created_at >= since).limit(1)
    ).first() is not None
