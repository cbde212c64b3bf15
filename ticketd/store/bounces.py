"""Bounces: find the outbox rows a delivery report names, and mark participant addresses bounced."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, select, update

from ticketd.store.tables import outbox, participants


def outbox_rows_by_message_ids(conn: Connection, message_ids: list[str]) -> list[Mapping]:
    """The outbox rows carrying these Message-IDs, newest first."""
    if not message_ids:
        return []
    return list(conn.execute(select(outbox).where(outbox.c.message_id.in_(message_ids))
                             .order_by(outbox.c.id.desc())).mappings())


def mark_bounced(conn: Connection, ticket_id: int, address: str, now: datetime) -> None:
    """Mark the participant bounced, keeping the first bounce's time."""
    conn.execute(update(participants).where(
        participants.c.ticket_id == ticket_id, participants.c.email == address,
        participants.c.bounced_at.is_(None)).values(bounced_at=now))


def unmark_bounced(conn: Connection, ticket_id: int, address: str) -> None:
    """Take the participant's bounce mark off; processing reads it with their role (participant_standing)."""
    conn.execute(update(participants).where(
        participants.c.ticket_id == ticket_id, participants.c.email == address).values(bounced_at=None))

