"""Bounces: find the outbox row a delivery report is about, and mark participant addresses bounced."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, select, update

from ticketd.store.tables import outbox, participants


def latest_by_message_ids(conn: Connection, message_ids: list[str]) -> Mapping | None:
    """The newest outbox row carrying one of these Message-IDs."""
    return conn.execute(select(outbox).where(outbox.c.message_id.in_(message_ids))
                        .order_by(outbox.c.id.desc()).limit(1)).mappings().first()


def latest_sent_to(conn: Connection, recipients: list[str]) -> Mapping | None:
    """The newest sent outbox row of a ticket to one of `recipients`."""
    return conn.execute(select(outbox).where(outbox.c.recipient.in_(recipients),
                                             outbox.c.state == "sent", outbox.c.ticket_id.is_not(None))
                        .order_by(outbox.c.id.desc()).limit(1)).mappings().first()


def mark_bounced(conn: Connection, ticket_id: int, address: str, now: datetime) -> None:
    """Mark the participant bounced, keeping the first bounce's time."""
    conn.execute(update(participants).where(
        participants.c.ticket_id == ticket_id, participants.c.email == address,
        participants.c.bounced_at.is_(None)).values(bounced_at=now))

