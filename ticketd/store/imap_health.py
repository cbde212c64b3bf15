"""How each IMAP poller fares: its last good poll, or the error it fails with and since when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update

from ticketd.store.db import insert_if_absent, reading
from ticketd.store.tables import imap_health


@dataclass(frozen=True)
class MailboxHealth:
    mailbox: str
    last_ok_at: datetime | None
    error: str | None            # None: polling works
    failing_since: datetime | None
    failures: int
    oversized: int = 0                    # mail left on the server over max_message_bytes
    oversized_largest: int | None = None  # the largest of it, in bytes
    set_aside: tuple[int, ...] = ()       # UIDs of mail the server refused to hand out, left unread


def record_poll_ok(engine: Engine, mailbox: str, now: datetime, oversized: tuple[int, int | None] = (0, None),
                   set_aside: tuple[int, ...] = ()) -> None:
    """A poll went through: the mailbox is fine again, whatever failed before; `oversized` and `set_aside` as it
    found them."""
    values = dict(last_ok_at=now, error=None, failing_since=None, failures=0, updated_at=now,
                  oversized=oversized[0], oversized_largest=oversized[1],
                  set_aside=" ".join(map(str, set_aside)) or None)
    with engine.begin() as conn:
        if not insert_if_absent(conn, imap_health, dict(mailbox=mailbox, **values), ["mailbox"]):
            conn.execute(update(imap_health).where(imap_health.c.mailbox == mailbox).values(**values))


def record_poll_failure(engine: Engine, mailbox: str, error: str, now: datetime) -> None:
    """A connection, login or round failed with `error`; the first since the last good poll starts the count."""
    with engine.begin() as conn:
        first = dict(mailbox=mailbox, last_ok_at=None, error=error, failing_since=now, failures=1, updated_at=now)
        if not insert_if_absent(conn, imap_health, first, ["mailbox"]):
            conn.execute(update(imap_health).where(imap_health.c.mailbox == mailbox).values(
                error=error, failing_since=func.coalesce(imap_health.c.failing_since, now),
                failures=imap_health.c.failures + 1, updated_at=now))


def load_health(engine: Engine) -> dict[str, MailboxHealth]:
    """Every mailbox a poller has reported on, by its key."""
    with reading(engine) as conn:
        rows = conn.execute(select(imap_health)).all()
    return {row.mailbox: MailboxHealth(row.mailbox, row.last_ok_at, row.error, row.failing_since,
                                       int(row.failures), int(row.oversized), row.oversized_largest,
                                       tuple(int(uid) for uid in (row.set_aside or "").split()))
            for row in rows}
