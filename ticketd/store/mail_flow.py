"""What `ticketd status` asks of the database beyond its counts: is mail flowing (ticketd/health.py).

Each look-up goes through an index (schema.sql), so that status, run every
minute by monitoring, stays quick on a database of years: it reads the rows
still in the queues (mail waiting, quarantined, unsent), never the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select

from ticketd.store.tables import outbox, raw_mail

_UNSENT = ("pending", "sending")

# raw_mail_state (state, id): the quarantined rows only; when each was set aside is read from the row. One an
# admin dismissed (`ticketd quarantine dismiss`) was looked at, and is no news.
_QUARANTINED_SINCE = select(func.count()).select_from(raw_mail).where(
    raw_mail.c.state == "quarantined", raw_mail.c.processed_at >= bindparam("since"),
    raw_mail.c.dismissed_at.is_(None))
# outbox_state (state, next_attempt_at): a range of the failed rows. A failed row's next_attempt_at is when its
# last attempt was due, the moment it failed give or take the time it waited for a worker.
_FAILED_SINCE = select(func.count()).select_from(outbox).where(
    outbox.c.state == "failed", outbox.c.next_attempt_at >= bindparam("since"), outbox.c.dismissed_at.is_(None))
# outbox_state again, the unsent rows only (the two states): how many were queued before a time, and the
# last error of the one queued first.
_UNSENT_BEFORE = select(func.count()).select_from(outbox).where(
    outbox.c.state.in_(_UNSENT), outbox.c.created_at <= bindparam("before"))
_OLDEST_UNSENT_ERROR = (select(outbox.c.last_error).where(outbox.c.state.in_(_UNSENT))
                        .order_by(outbox.c.created_at, outbox.c.id).limit(1))
# outbox_sent's last entry (a max over an index, one probe): when the mail sent last went. Not when it was
# due: a backlog queued long ago (a smarthost back after an outage) goes out with old due times. Only a
# delivery sets sent_at (ticketd/store/outbox.py, mark_sent).
_LAST_SENT = select(func.max(outbox.c.sent_at))


@dataclass(frozen=True)
class MailFlow:
    quarantined_recent: int           # mail set aside since `quarantined_since`, not dismissed
    failed_recent: int                # outbox rows failed for good since `failed_since`, not dismissed
    unsent_late: int                  # outbox rows queued before `late_before` and not sent
    oldest_unsent_error: str | None   # the last error of the unsent row queued first
    last_sent_at: datetime | None     # when the mail sent last went


def mail_flow(conn: Connection, *, quarantined_since: datetime, failed_since: datetime,
              late_before: datetime) -> MailFlow:
    """The counts and times the mail-flow checks of `ticketd status` weigh."""
    return MailFlow(
        quarantined_recent=conn.execute(_QUARANTINED_SINCE, dict(since=quarantined_since)).scalar_one(),
        failed_recent=conn.execute(_FAILED_SINCE, dict(since=failed_since)).scalar_one(),
        unsent_late=conn.execute(_UNSENT_BEFORE, dict(before=late_before)).scalar_one(),
        oldest_unsent_error=conn.execute(_OLDEST_UNSENT_ERROR).scalar_one_or_none(),
        last_sent_at=conn.execute(_LAST_SENT).scalar_one(),
    )
