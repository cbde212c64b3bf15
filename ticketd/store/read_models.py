"""Reads behind the CLI's views: ticket, participant, message, attachment, event, outbox and quarantine rows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, select

from ticketd.store.tables import attachments, events, messages, outbox, participants, raw_mail, tickets


def ticket_rows(conn: Connection, status: str | None = None, limit: int | None = None) -> Sequence[RowMapping]:
    """Tickets, newest first, optionally of one status."""
    stmt = select(tickets).order_by(tickets.c.id.desc())
    if status:
        stmt = stmt.where(tickets.c.status == status)
    if limit:
        stmt = stmt.limit(limit)
    return conn.execute(stmt).mappings().all()


def participant_rows(conn: Connection, ticket_ids: list[int]) -> Sequence[RowMapping]:
    """Participants of these tickets, in the order they were added."""
    return conn.execute(select(participants).where(participants.c.ticket_id.in_(ticket_ids))
                        .order_by(participants.c.id)).mappings().all()


def message_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(messages).where(messages.c.ticket_id == ticket_id)
                        .order_by(messages.c.id)).mappings().all()


def attachment_rows(conn: Connection, message_row_ids: list[int]) -> Sequence[RowMapping]:
    return conn.execute(select(attachments).where(attachments.c.message_id.in_(message_row_ids))
                        .order_by(attachments.c.id)).mappings().all()


def event_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(events).where(events.c.ticket_id == ticket_id)
                        .order_by(events.c.id)).mappings().all()


def outbox_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(outbox).where(outbox.c.ticket_id == ticket_id)
                        .order_by(outbox.c.id)).mappings().all()


def quarantined_rows(conn: Connection) -> Sequence[RowMapping]:
    """Quarantined raw mails (without their bytes), oldest first."""
    return conn.execute(
        select(raw_mail.c.id, raw_mail.c.received_at, raw_mail.c.reason, raw_mail.c.message_id,
               raw_mail.c.size, raw_mail.c.source, raw_mail.c.attempts)
        .where(raw_mail.c.state == "quarantined").order_by(raw_mail.c.id)
    ).mappings().all()
