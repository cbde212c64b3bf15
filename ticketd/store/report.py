"""What `ticketd report` reads: tickets created and closed in a window, open counts, events, ratings, reactions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from ticketd.domain.report import BREACH_KINDS, REOPEN_KINDS, Rating, Reaction, TicketTimes
from ticketd.domain.statuses import Status
from ticketd.store.tables import events, messages, ratings, reactions, tickets

_TIMES = (tickets.c.id, tickets.c.assignee, tickets.c.created_at, tickets.c.first_response_at, tickets.c.closed_at)


# A ticket merged into another is left out of the figures: its conversation
# went on in the other one, which counts it (`ticketd tickets merge`).


def created_since(conn: Connection, since: datetime) -> list[TicketTimes]:
    return [TicketTimes(*row) for row in conn.execute(
        select(*_TIMES).where(tickets.c.created_at >= since, tickets.c.merged_into.is_(None)))]


def closed_since(conn: Connection, since: datetime) -> list[TicketTimes]:
    return [TicketTimes(*row) for row in conn.execute(
        select(*_TIMES).where(tickets.c.status == Status.CLOSED.value, tickets.c.closed_at >= since,
                              tickets.c.merged_into.is_(None)))]


def open_by_assignee(conn: Connection) -> dict[str | None, int]:
    """Tickets not closed, by assignee (None: unassigned)."""
    return dict(conn.execute(select(tickets.c.assignee, func.count())
                             .where(tickets.c.status != Status.CLOSED.value).group_by(tickets.c.assignee)).all())


def event_kinds_since(conn: Connection, since: datetime) -> dict[str, int]:
    """How many breach and reopen events the window holds, by kind."""
    counted = dict(conn.execute(select(events.c.kind, func.count())
                                .where(events.c.at >= since, events.c.kind.in_(BREACH_KINDS + REOPEN_KINDS))
                                .group_by(events.c.kind)).all())
    if by_agents := _reopened_by_agents(conn, since):
        counted["reopened"] = counted.get("reopened", 0) + by_agents
    return counted


def _reopened_by_agents(conn: Connection, since: datetime) -> int:
    """Closed tickets an agent's `#status` (or `#postpone`, `#dev`) opened again in the window.

    A customer's mail reopening one is a `reopened` event; an agent's
    command is a `status` one, leaving `closed`, and is a reopening all the same.
    """
    return conn.execute(select(func.count()).select_from(events).where(
        events.c.at >= since, events.c.kind == "status", events.c.from_value == Status.CLOSED.value)).scalar_one()


def ratings_since(conn: Connection, since: datetime) -> list[Rating]:
    return [Rating(*row) for row in conn.execute(
        select(tickets.c.assignee, ratings.c.usefulness, ratings.c.speed, ratings.c.politeness)
        .join(tickets, tickets.c.id == ratings.c.ticket_id).where(ratings.c.created_at >= since))]


def reactions_since(conn: Connection, since: datetime) -> list[Reaction]:
    """Likes and dislikes in the window, each with the address of the agent whose reply it was."""
    return [Reaction(*row) for row in conn.execute(
        select(messages.c.from_addr, reactions.c.reaction)
        .join(messages, messages.c.id == reactions.c.message_id).where(reactions.c.created_at >= since))]
