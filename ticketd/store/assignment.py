"""Assignment queries: the round-robin cursor, open counts, waiting tickets and the last assignment event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, func, inspect, select, update

from ticketd.domain.statuses import Status
from ticketd.store.db import insert_if_absent
from ticketd.store.tables import events, rr_cursor, tickets


# Built once, executed with parameters (see ticketd/store/tickets.py).
# By agent and by open status, so that the (assignee, status) index finds
# only open tickets: `status != 'closed'` read every closed ticket the
# agents ever had, 11 ms per assignment at 200 000 tickets against 0.3
# (SQLite; bench/assignment.py, bench/README.md change 22).
_OPEN_COUNTS = (
    select(tickets.c.assignee, func.count())
    .where(tickets.c.assignee.in_(bindparam("agents", expanding=True)),
           tickets.c.status.in_([s.value for s in Status if s is not Status.CLOSED]))
    .group_by(tickets.c.assignee))
_CURSOR = select(rr_cursor.c.last_agent).where(rr_cursor.c.group_name == bindparam("group"))
_CURSOR_FOR_UPDATE = _CURSOR.with_for_update()
_ADVANCE_CURSOR = update(rr_cursor).where(rr_cursor.c.group_name == bindparam("group"))
# What the unassigned sweep would take (open, unassigned, in a group), newer
# than a given ticket. SKIP LOCKED: tickets another transaction holds are
# left to it, so taking them never waits (bench/README.md change 28).
_UNASSIGNED_AFTER = (
    select(tickets)
    .where(tickets.c.group_name == bindparam("group"), tickets.c.assignee.is_(None),
           tickets.c.status != Status.CLOSED.value, tickets.c.id > bindparam("after"))
    .order_by(tickets.c.id).limit(bindparam("limit")))
_UNASSIGNED_AFTER_SKIP_LOCKED = _UNASSIGNED_AFTER.with_for_update(skip_locked=True)
_OPEN_OF_NON_AGENTS = (
    select(tickets.c.id, tickets.c.assignee)
    .where(tickets.c.assignee.is_not(None), tickets.c.assignee.not_in(bindparam("agents", expanding=True)),
           tickets.c.status.in_([s.value for s in Status if s is not Status.CLOSED]))
    .order_by(tickets.c.id).limit(bindparam("limit")))
_OPEN_NOT_IN_GROUPS = (
    select(tickets.c.id, tickets.c.group_name)
    .where(tickets.c.group_name.is_not(None), tickets.c.group_name.not_in(bindparam("groups", expanding=True)),
           tickets.c.status.in_([s.value for s in Status if s is not Status.CLOSED]))
    .order_by(tickets.c.id).limit(bindparam("limit")))


def open_counts(conn: Connection, agents: Iterable[str]) -> dict[str, int]:
    """Open (not closed) tickets of each of these agents (by email) that has any."""
    return {assignee: count for assignee, count in conn.execute(_OPEN_COUNTS, dict(agents=list(agents))).all()}


def open_tickets_of_non_agents(conn: Connection, agents: Iterable[str], limit: int) -> list[tuple[int, str]]:
    """(id, assignee) of open tickets assigned to an address not among `agents`, oldest first."""
    return [tuple(r) for r in conn.execute(_OPEN_OF_NON_AGENTS, dict(agents=list(agents), limit=limit)).all()]


def open_tickets_of_other_groups(conn: Connection, groups: Iterable[str], limit: int) -> list[tuple[int, str]]:
    """(id, group) of open tickets in a group not among `groups` (one the rules no longer have), oldest first."""
    return [tuple(r) for r in conn.execute(_OPEN_NOT_IN_GROUPS, dict(groups=list(groups), limit=limit)).all()]


def lock_cursor(conn: Connection, group: str, now: datetime) -> str | None:
    """The group's last agent, with its cursor row locked until commit (created if missing).

    SELECT ... FOR UPDATE makes every assignment of the group wait its turn;
    the group's first one finds no row, and INSERT ... ON CONFLICT DO NOTHING
    makes two first-ever assignments safe before both lock the one row.
    SQLite already holds the database write lock (BEGIN IMMEDIATE,
    ticketd/store/db.py).
    """
    stmt = _CURSOR_FOR_UPDATE if conn.dialect.name == "postgresql" else _CURSOR
    row = conn.execute(stmt, dict(group=group)).first()
    if row is None:
        insert_if_absent(conn, rr_cursor, dict(group_name=group, last_agent=None, updated_at=now), ["group_name"])
        row = conn.execute(stmt, dict(group=group)).one()
    return row[0]


def lock_unassigned_after(conn: Connection, group: str, ticket_id: int, limit: int) -> list[dict]:
    """Up to `limit` open unassigned tickets of the group newer than `ticket_id`, oldest first, locked.

    On PostgreSQL rows another transaction has locked are skipped, not
    waited for: the caller holds its own ticket and the group's cursor,
    and waiting for a ticket while holding those is how two transactions
    deadlock (processing locks a reply's ticket, and `#assign` the cursor
    after it). SQLite holds the file.
    """
    stmt = _UNASSIGNED_AFTER_SKIP_LOCKED if conn.dialect.name == "postgresql" else _UNASSIGNED_AFTER
    rows = conn.execute(stmt, dict(group=group, after=ticket_id, limit=limit)).mappings().all()
    return [dict(r) for r in rows]


def advance_cursor(conn: Connection, group: str, agent_email: str, now: datetime) -> None:
    """Record `agent_email` as the group's last agent (the row is locked by lock_cursor)."""
    conn.execute(_ADVANCE_CURSOR, dict(group=group, last_agent=agent_email, updated_at=now))


def read_cursor(conn: Connection, group: str) -> str | None:
    """The group's last agent, read without locking (dry runs)."""
    return conn.execute(_CURSOR, dict(group=group)).scalar()


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
