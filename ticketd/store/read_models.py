"""Reads behind the CLI's views: ticket, participant, message, attachment, event, outbox and quarantine rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, Text, and_, bindparam, exists, func, or_, select

from ticketd.store.tables import attachments, events, messages, outbox, participants, raw_mail, tickets, timers
from ticketd.store.timers import HELD_BY_QUARANTINE

# `assignee=UNASSIGNED` asks for tickets nobody has.
UNASSIGNED = ""


# The ids one statement binds at most: PostgreSQL's protocol carries up to
# 65 535 parameters, SQLite takes 32 766 (250 000 as Debian builds it), and
# `tickets list` on a desk of years lists more tickets than that, as
# `tickets show` does messages of a ticket a robot wrote to for years.
IDS_PER_STATEMENT = 10_000
# How many of the open tickets nobody will take (no group, no agent) `ticketd status` names by number.
NO_GROUP_NAMED = 5


def _batches(ids: list) -> list[list]:
    return [ids[i:i + IDS_PER_STATEMENT] for i in range(0, len(ids), IDS_PER_STATEMENT)]


def ticket_rows(conn: Connection, status: str | None = None, limit: int | None = None, *,
                statuses: Sequence[str] = (), assignee: str | None = None,
                requester: str | None = None, terms: Sequence[str] = ()) -> Sequence[RowMapping]:
    """Tickets, newest first, optionally of some statuses, one assignee (or none), one requester,
    and holding every one of `terms` (lower-cased; see `_holds`)."""
    stmt = select(tickets).order_by(tickets.c.id.desc())
    wanted = [*statuses, *([status] if status else [])]
    if wanted:
        stmt = stmt.where(tickets.c.status.in_(wanted))
    if assignee == UNASSIGNED:
        stmt = stmt.where(tickets.c.assignee.is_(None))
    elif assignee is not None:
        stmt = stmt.where(tickets.c.assignee == assignee.lower())
    if requester is not None:
        stmt = stmt.where(tickets.c.requester == requester.lower())
    for term in terms:
        stmt = stmt.where(_holds(conn, term))
    if limit:
        stmt = stmt.limit(limit)
    return conn.execute(stmt).mappings().all()


def _folded(conn: Connection, column):
    """The column lower-cased beyond ASCII: SQLite's own lower() folds only A-Z, so its
    connections carry Python's (`ticketd_lower`, ticketd/store/db.py); PostgreSQL's
    lower() follows the database's LC_CTYPE (C.UTF-8 or a language's locale fold
    every script, plain C only A-Z)."""
    fold = func.ticketd_lower if conn.dialect.name == "sqlite" else func.lower
    return fold(column, type_=Text)


def _holds(conn: Connection, term: str):
    """Whether a ticket holds `term` anywhere a person would look: its subject, its requester's
    address or name, a message's text (quoted history included), subject or sender, a file's name.

    A substring match on every row, with `%` and `_` taken literally: no
    index serves it, so a search reads the text of the tickets it looks at
    (bench/README.md, Search).
    """
    def has(column):
        return _folded(conn, column).contains(term, autoescape=True)

    on_ticket = messages.c.ticket_id == tickets.c.id
    return or_(
        has(tickets.c.subject), has(tickets.c.requester), has(tickets.c.requester_name),
        exists().where(on_ticket, or_(has(messages.c.full_text), has(messages.c.subject),
                                      has(messages.c.from_addr), has(messages.c.from_name))),
        exists().where(on_ticket, attachments.c.message_id == messages.c.id, has(attachments.c.filename)),
    )


def newest_hits(conn: Connection, ticket_ids: list[int], terms: Sequence[str]) -> dict[int, RowMapping]:
    """Per ticket, its newest message whose text holds one of `terms` (id and text), for a snippet."""
    holding = or_(*(_folded(conn, messages.c.full_text).contains(t, autoescape=True) for t in terms))
    hits: dict[int, RowMapping] = {}
    for some in _batches(ticket_ids):
        newest = (select(func.max(messages.c.id)).where(messages.c.ticket_id.in_(some), holding)
                  .group_by(messages.c.ticket_id))
        hits.update((r["ticket_id"], r) for r in conn.execute(
            select(messages.c.id, messages.c.ticket_id, messages.c.full_text).where(messages.c.id.in_(newest))
        ).mappings())
    return hits


def participant_rows(conn: Connection, ticket_ids: list[int]) -> list[RowMapping]:
    """Participants of these tickets, each ticket's in the order they were added."""
    return [row for some in _batches(ticket_ids)
            for row in conn.execute(select(participants).where(participants.c.ticket_id.in_(some))
                                    .order_by(participants.c.id)).mappings()]


def merge_targets(conn: Connection, ticket_ids: list[int]) -> set[int]:
    """Which of `ticket_ids` another ticket was merged into (`tickets merge`)."""
    return {target for some in _batches(ticket_ids)
            for target in conn.execute(select(tickets.c.merged_into).where(tickets.c.merged_into.in_(some))).scalars()}


def message_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(messages).where(messages.c.ticket_id == ticket_id)
                        .order_by(messages.c.id)).mappings().all()


# Built once, executed with parameters: both run inside every assignment
# and every notice that carries files, where building the statement cost
# more than running it (see ticketd/store/tickets.py). An agent's mail of
# commands only (`#priority high`, `#history`) is stored internal and
# without text: it says nothing to read, and its changes are events.
_SAID = or_(messages.c.internal.is_(False), messages.c.text != "")
_LATEST_MESSAGES = (
    select(messages.c.id, messages.c.created_at, messages.c.direction, messages.c.author_role,
           messages.c.from_addr, messages.c.from_name, messages.c.internal, messages.c.auto_generated,
           func.substr(messages.c.text, 1, bindparam("chars")).label("text"),
           func.length(messages.c.text).label("text_length"),
           select(func.count()).select_from(messages).where(messages.c.ticket_id == bindparam("ticket_id"), _SAID)
           .scalar_subquery().label("total"))
    .where(messages.c.ticket_id == bindparam("ticket_id"), _SAID).order_by(messages.c.id.desc())
    .limit(bindparam("limit")))
_ATTACHMENTS_OF = (select(attachments).where(attachments.c.message_id.in_(bindparam("ids", expanding=True)))
                   .order_by(attachments.c.id))


def latest_messages(conn: Connection, ticket_id: int, limit: int,
                    text_chars: int) -> tuple[Sequence[RowMapping], int]:
    """The ticket's last `limit` messages that say something, newest first, and how many; one statement.

    Each row's `text` is the first `text_chars` characters of the column and
    `text_length` its whole length, so a huge text is measured, not read.
    """
    rows = conn.execute(_LATEST_MESSAGES, {"ticket_id": ticket_id, "limit": limit, "chars": text_chars}
                        ).mappings().all()
    return rows, (rows[0]["total"] if rows else 0)


def attachment_rows(conn: Connection, message_row_ids: list[int]) -> list[RowMapping]:
    return [row for some in _batches(list(message_row_ids))
            for row in conn.execute(_ATTACHMENTS_OF, {"ids": some}).mappings()]


def file_sizes(conn: Connection, sha256s: set[str]) -> dict[str, int]:
    """The size of each of these attachment files that some attachment row names."""
    if not sha256s:
        return {}
    return {sha256: size for some in _batches(sorted(sha256s))
            for sha256, size in conn.execute(select(attachments.c.sha256, func.max(attachments.c.size))
                                             .where(attachments.c.sha256.in_(some)).group_by(attachments.c.sha256))}


def event_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(events).where(events.c.ticket_id == ticket_id)
                        .order_by(events.c.id)).mappings().all()


def outbox_rows(conn: Connection, ticket_id: int) -> Sequence[RowMapping]:
    return conn.execute(select(outbox).where(outbox.c.ticket_id == ticket_id)
                        .order_by(outbox.c.id)).mappings().all()


def quarantined_rows(conn: Connection, dismissed: bool | None = False) -> Sequence[RowMapping]:
    """Quarantined raw mails (without their bytes), oldest first: those not dismissed, the dismissed ones
    (`dismissed` True), or all (None)."""
    stmt = (select(raw_mail.c.id, raw_mail.c.received_at, raw_mail.c.reason, raw_mail.c.message_id,
                   raw_mail.c.size, raw_mail.c.source, raw_mail.c.attempts, raw_mail.c.dismissed_at,
                   raw_mail.c.dismissed_by, raw_mail.c.dismiss_reason)
            .where(raw_mail.c.state == "quarantined").order_by(raw_mail.c.id))
    if dismissed is not None:
        stmt = stmt.where(raw_mail.c.dismissed_at.is_not(None) if dismissed else raw_mail.c.dismissed_at.is_(None))
    return conn.execute(stmt).mappings().all()


@dataclass(frozen=True)
class DeskCounts:
    """How much is where: the queues between mail in, tickets and mail out."""
    raw_by_state: dict[str, int]
    oldest_waiting_raw: datetime | None       # received_at of the oldest mail not yet processed
    outbox_by_state: dict[str, int]
    oldest_pending_outbox: datetime | None    # created_at of the oldest mail not yet sent
    tickets_by_status: dict[str, int]
    unassigned_open: int                      # tickets not closed and assigned to nobody
    no_group_open: int                        # of those, the ones with no group: nobody will take them
    no_group_ids: list[int]                   # the oldest few of them, for status to name
    timers_armed: int
    timers_overdue: int                       # due and not fired, none of them held
    timers_held: int                          # due, held by a quarantined reply (ticketd/quarantined_reply.py)
    next_timer_due: datetime | None


def desk_counts(conn: Connection, now: datetime) -> DeskCounts:
    """Counts for `ticketd status`; a handful of aggregate queries, no row is read whole."""
    def by(column) -> dict[str, int]:
        return dict(conn.execute(select(column, func.count()).group_by(column)).all())

    armed = timers.c.state == "armed"
    no_group = and_(tickets.c.group_name.is_(None), tickets.c.assignee.is_(None), tickets.c.status != "closed")
    return DeskCounts(
        raw_by_state=by(raw_mail.c.state),
        oldest_waiting_raw=conn.execute(select(func.min(raw_mail.c.received_at)).where(
            raw_mail.c.state.in_(("received", "processing")))).scalar_one(),
        outbox_by_state=by(outbox.c.state),
        oldest_pending_outbox=conn.execute(select(func.min(outbox.c.created_at)).where(
            outbox.c.state.in_(("pending", "sending")))).scalar_one(),
        tickets_by_status=by(tickets.c.status),
        unassigned_open=conn.execute(select(func.count()).select_from(tickets).where(
            tickets.c.assignee.is_(None), tickets.c.status != "closed")).scalar_one(),
        no_group_open=conn.execute(select(func.count()).select_from(tickets).where(no_group)).scalar_one(),
        no_group_ids=list(conn.execute(select(tickets.c.id).where(no_group).order_by(tickets.c.id)
                                       .limit(NO_GROUP_NAMED)).scalars()),
        timers_armed=conn.execute(select(func.count()).select_from(timers).where(armed)).scalar_one(),
        timers_overdue=conn.execute(select(func.count()).select_from(timers).where(
            armed, timers.c.due_at <= now, ~HELD_BY_QUARANTINE)).scalar_one(),
        timers_held=conn.execute(select(func.count()).select_from(timers).where(
            armed, timers.c.due_at <= now, HELD_BY_QUARANTINE)).scalar_one(),
        next_timer_due=conn.execute(select(func.min(timers.c.due_at)).where(armed)).scalar_one(),
    )


def sender_name(conn: Connection, ticket_id: int, address: str) -> str | None:
    """The display name on this address's latest mail on the ticket that had one, or None."""
    return conn.execute(select(messages.c.from_name)
                        .where(messages.c.ticket_id == ticket_id, func.lower(messages.c.from_addr) == address.lower(),
                               messages.c.direction == "in", messages.c.from_name.is_not(None),
                               messages.c.from_name != "")
                        .order_by(messages.c.id.desc()).limit(1)).scalar_one_or_none()


def message_event_kinds(conn: Connection, ticket_id: int, message_row_ids: list[int],
                        kinds: Sequence[str]) -> dict[int, str]:
    """{message row id: kind} of the ticket's events of these kinds that name one of these messages."""
    if not message_row_ids:
        return {}
    # By ticket first: events_ticket is the index events have (schema.sql).
    return dict(conn.execute(select(events.c.message_id, events.c.kind)
                             .where(events.c.ticket_id == ticket_id, events.c.kind.in_(list(kinds)),
                                    events.c.message_id.in_(list(message_row_ids)))
                             .order_by(events.c.id)).all())
