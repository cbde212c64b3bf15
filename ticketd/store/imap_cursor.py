"""Where each IMAP mailbox stands: its UIDVALIDITY, the last UID looked at, and the UIDs below it still owed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from ticketd.clock import utcnow
from ticketd.store.db import insert_if_absent
from ticketd.store.tables import imap_cursor


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int
    # UIDs up to last_uid not taken yet: the unseen mail a first look found,
    # and mail over max_message_bytes, which stays on the server until taken.
    owed: tuple[int, ...] = ()


def load_cursor(engine: Engine, mailbox: str) -> Cursor | None:
    """The saved position of `mailbox`, or None before its first poll."""
    with engine.connect() as conn:
        row = conn.execute(
            select(imap_cursor.c.uidvalidity, imap_cursor.c.last_uid, imap_cursor.c.owed)
            .where(imap_cursor.c.mailbox == mailbox)
        ).one_or_none()
    return Cursor(int(row.uidvalidity), int(row.last_uid), uid_list(row.owed)) if row else None


def save_cursor(engine: Engine, mailbox: str, uidvalidity: int, last_uid: int, owed: Iterable[int] = ()) -> None:
    """Record the position; a new UIDVALIDITY replaces the old one with its own last UID and owed UIDs."""
    values = dict(uidvalidity=uidvalidity, last_uid=last_uid, owed=uid_set(owed), updated_at=utcnow())
    with engine.begin() as conn:
        # The first save inserts; every later one (or one racing another
        # process's first save) updates the row that is there.
        if not insert_if_absent(conn, imap_cursor, dict(mailbox=mailbox, **values), ["mailbox"]):
            conn.execute(update(imap_cursor).where(imap_cursor.c.mailbox == mailbox).values(**values))


def uid_set(uids: Iterable[int]) -> str | None:
    """UIDs as an IMAP sequence set (RFC 3501 section 9, `1:4,7`): thousands of them stay short; None for none."""
    ordered = sorted(set(uids))
    runs: list[str] = []
    start = previous = None
    for uid in ordered + [None]:
        if previous is not None and uid == previous + 1:
            previous = uid
            continue
        if start is not None:
            runs.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = uid
    return ",".join(runs) or None


def uid_list(text: str | None) -> tuple[int, ...]:
    """The UIDs of a sequence set `uid_set` wrote, in order."""
    uids: list[int] = []
    for run in (text or "").split(","):
        if not run:
            continue
        first, _, last = run.partition(":")
        uids.extend(range(int(first), int(last or first) + 1))
    return tuple(uids)
