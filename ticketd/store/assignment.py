"""Assignment queries: the round-robin cursor, open counts, waiting tickets and the last assignment event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, func, inspect, select, update

from ticketd.domain.statuses import Status
from ticketd.store.db import insert_if_absent
from ticketd.store.tables import events, rr_cursor, tickets


def open_counts(conn: Connection) -> dict[str, int]:
    """Open (not closed) tickets per assignee."""
    rows = conn.execute(
        select(tickets.c.assignee, func.count()).where(tickets.c.assignee.is_not(None),
                                                        tickets.c.status != Status.CLOSED.value)
        .group_by(tickets.c.assignee)
    ).all()
    return {assignee: count for assignee, count in rows}


def lock_cursor(conn: Connection, group: str, now: datetime) -> str | None:
    """The group's last agent, with its cursor row locked until commit (created if missing).

    INSERT ... ON CONFLICT DO NOTHING makes two first-ever assignments safe;
    SELECT ... FOR UPDATE then makes every later one wait its turn. SQLite
    already holds the database write lock (BEGIN IMMEDIATE, ticketd/store/db.py).
    """
    insert_if_absent(conn, rr_cursor, dict(group_name=group, last_agent=None, updated_at=now), ["group_name"])
    stmt = select(rr_cursor.c.last_agent).where(rr_cursor.c.group_name == group)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).scalar_one()


def advance_cursor(conn: Connection, group: str, agent_email: str, now: datetime) -> None:
    """Record `agent_email` as the group's last agent (the row is locked by lock_cursor)."""
    conn.execute(update(rr_cursor).where(rr_cursor.c.group_name == group)
                 .values(last_agent=agent_email, updated_at=now))


def read_cursor(conn: Connection, group: str) -> str | None:
    """The group's last agent, read without locking (dry runs)."""
    return conn.execute(select(rr_cursor.c.last_agent).where(rr_cursor.c.group_name == group)).scalar()


def has_cursor_table(engine: Engine) -> bool:
    """Whether this database has the round-robin cursor table at all."""
    return inspect(engine).has_table("rr_cursor")


def last_assignment_event(conn: Connection, ticket_id: int) -> str | None:
    """The kind of the ticket's latest assigned / assignment_waiting / unassigned event."""
    return conn.execute(
        select(events.c.kind).where(events.c.ticket_id == ticket_id,
                                    events.c.kind.in_(("assigned", "assignment_waiting", "unassigned")))
        .order_by(events.c.id.desc()).limit(1)
    ).scalar_one_or_none()


def waiting_unassigned(conn: Connection, limit: int, created_before: datetime) -> list[tuple[int, str]]:
    """(id, group) of open unassigned tickets with a group created before a time, oldest first."""
    return conn.execute(
        select(tickets.c.id, tickets.c.group_name).where(
            tickets.c.assignee.is_(None), tickets.c.status != Status.CLOSED.value,
            tickets.c.group_name.is_not(None), tickets.c.created_at <= created_before)
        .order_by(tickets.c.id).limit(limit)
    ).all()
