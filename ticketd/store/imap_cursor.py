"""Where each IMAP mailbox stands: its UIDVALIDITY and the last UID taken in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ticketd.clock import utcnow
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
    for _ in range(2):
        with engine.begin() as conn:
            done = conn.execute(update(imap_cursor).where(imap_cursor.c.mailbox == mailbox).values(**values))
            if done.rowcount:
                return
        try:
            with engine.begin() as conn:
                conn.execute(insert(imap_cursor).values(mailbox=mailbox, **values))
            return
        except IntegrityError:  # another process inserted it first: update that row
            continue
    raise RuntimeError(f"could not save the IMAP cursor of {mailbox}")
