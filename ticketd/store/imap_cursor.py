"""Where each IMAP mailbox stands: its UIDVALIDITY and the last UID taken in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from ticketd.clock import utcnow
from ticketd.store.db import insert_if_absent
from ticketd.store.tables import imap_cursor


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int


def load_cursor(engine: Engine, mailbox: str) -> Cursor | None:
    """The saved position of `mailbox`, or None before its first poll."""
    with engine.connect() as conn:
        row = conn.execute(
            select(imap_cursor.c.uidvalidity, imap_cursor.c.last_uid).where(imap_cursor.c.mailbox == mailbox)
        ).one_or_none()
    return Cursor(int(row.uidvalidity), int(row.last_uid)) if row else None


def save_cursor(engine: Engine, mailbox: str, uidvalidity: int, last_uid: int) -> None:
    """Record the position; a new UIDVALIDITY replaces the old one with its own last UID."""
    values = dict(uidvalidity=uidvalidity, last_uid=last_uid, updated_at=utcnow())
    with engine.begin() as conn:
        # The first save inserts; every later one (or one racing another
        # process's first save) updates the row that is there.
        if not insert_if_absent(conn, imap_cursor, dict(mailbox=mailbox, **values), ["mailbox"]):
            conn.execute(update(imap_cursor).where(imap_cursor.c.mailbox == mailbox).values(**values))
