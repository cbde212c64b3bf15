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
_ARMED_OF_KIND = select(timers.c.id, timers.c.created_at, timers.c.due_at).where(
    timers.c.ticket_id == bindparam("ticket_id"), timers.c.state == "armed", timers.c.kind == bindparam("kind")
).order_by(timers.c.due_at, timers.c.id).limit(1)
_CANCEL_TIMER = update(timers).where(timers.c.id == bindparam("timer_id"), timers.c.state == "armed").values(
    state="cancelled", fired_at=bindparam("now"))


def arm_timers(conn: Connection, ticket_id: int, status: str, planned: Iterable[tuple[str, datetime]],
               now: datetime) -> None:
    """Insert one armed timer per (kind, due_at)."""
    conn.execute(_INSERT_TIMER, [dict(ticket_id=ticket_id, kind=kind, status=status, due_at=due_at,
                                      state="armed", created_at=now) for kind, due_at in planned])


def arm_timer(conn: Connection, ticket_id: int, kind: str, status: str, due_at: datetime, now: datetime) -> None:
    """Insert one armed timer."""
    arm_timers(conn, ticket_id, status, [(kind, due_at)], now)


def cancel_timer(conn: Connection, timer_id: int, now: datetime) -> None:
    """Cancel one timer, if it is still armed."""
    conn.execute(_CANCEL_TIMER, dict(timer_id=timer_id, now=now))


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


def armed_of_kind(conn: Connection, ticket_id: int, kind: str) -> dict | None:
    """The ticket's armed timer of `kind` (id, created_at, due_at), soonest first, if there is one."""
    row = conn.execute(_ARMED_OF_KIND, dict(ticket_id=ticket_id, kind=kind)).mappings().first()
    return dict(row) if row is not None else None


# PRODUCT.md's respond-within is about the customer: only a public agent
# reply, the one relayed to them, answers. An internal #note, a commands-only
# mail, a rejected mail and an agent's out-of-office are all stored internal.
_AGENT_REPLIED_SINCE = select(messages.c.id).where(
    messages.c.ticket_id == bindparam("ticket_id"), messages.c.author_role == "agent",
    messages.c.internal.is_(False), messages.c.created_at >= bindparam("since")).limit(1)


def agent_replied_since(conn: Connection, ticket_id: int, since: datetime) -> bool:
    """Whether an agent sent the customer a public reply on the ticket at or after `since`."""
    return conn.execute(_AGENT_REPLIED_SINCE, dict(ticket_id=ticket_id, since=since)).first() is not None
