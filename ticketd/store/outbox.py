"""Outbox rows: insert, claim once, mark sent / retry / failed, and the reads the sweep and limits need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    RowMapping,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from ticketd.store.driver import Hot
from ticketd.store.tables import messages, outbox, participants

_INSERT_ROW = insert(outbox).returning(outbox.c.id)  # compiled once, executed with parameters
_INSERT_ROW_HOT = Hot(_INSERT_ROW)   # processing's, on the driver's cursor (ticketd/store/driver.py)

# What loop protection asks before every notice, in one round trip
# (compiled once): has the address bounced on this ticket, has this ticket
# already had this template to it, and how many automatic mails went to it
# since a time. Both outbox look-ups go through the (recipient, ...) indexes.
_NOTICE_HISTORY = Hot(select(
    exists().where(participants.c.ticket_id == bindparam("ticket_id"),
                   participants.c.email == bindparam("recipient"), participants.c.bounced_at.is_not(None)),
    exists().where(outbox.c.recipient.in_(bindparam("addresses", expanding=True)),
                   outbox.c.ticket_id == bindparam("ticket_id"), outbox.c.template == bindparam("template")),
    select(func.count()).select_from(outbox).where(
        outbox.c.recipient.in_(bindparam("addresses_again", expanding=True)), outbox.c.automatic.is_(True),
        outbox.c.created_at > bindparam("since")).scalar_subquery(),
))


@dataclass(frozen=True)
class NoticeHistory:
    bounced: bool          # the recipient's address bounced on this ticket
    template_sent: bool    # this ticket already has a row of this template to the recipient
    recent_automatic: int  # automatic mails queued to the recipient since `since`


def insert_outbox_row(conn: Connection, *, ticket_id: int | None, message_row_id: int | None, template: str,
                      recipient: str, message_id: str, automatic: bool, raw: bytes, now: datetime) -> int:
    """A pending row due now, in the caller's transaction; its id.

    The caller holds the ticket's row lock (`lock_ticket`), taken before its
    first write: on PostgreSQL that keeps a ticket's ids in commit order (the
    claim below relies on it).
    """
    return _INSERT_ROW_HOT.execute(conn, dict(
        ticket_id=ticket_id, message_row_id=message_row_id, template=template,
        recipient=recipient, message_id=message_id, automatic=automatic,
        raw=raw, state="pending", attempts=0, next_attempt_at=now, created_at=now,
    )).scalar()


# Through the (recipient, created_at) index, as notice_history's count for the cap.
_SENT_OF_TEMPLATE = select(func.count()).select_from(outbox).where(
    outbox.c.recipient.in_(bindparam("addresses", expanding=True)), outbox.c.template == bindparam("template"),
    outbox.c.created_at > bindparam("since"))


def sent_of_template(conn: Connection, addresses: list[str], template: str, since: datetime) -> int:
    """How many mails of `template` were queued to any of `addresses` after `since`."""
    return conn.execute(_SENT_OF_TEMPLATE, dict(addresses=addresses, template=template, since=since)).scalar_one()


# Automatic rows since a time to a mailbox's subaddresses (`local+…@domain`) but those in `counted`: a
# range over the (recipient, created_at) index from "local+" up to "local," ("," follows "+"), and LIKE
# keeps only the mailbox's own, its domain in either IDNA form (`pattern`, `other_pattern`: one mailbox,
# RFC 5890; the same pattern twice for a domain with one spelling). The range is in the column's collation,
# as the index is: SQLite's BINARY and PostgreSQL's C or C.UTF-8 order by code point and find every one; a
# language's collation (en_US) may order punctuation otherwise and find fewer, counting as before. A
# COLLATE "C" range would find them all there too, but no index serves it: 7 ms a notice on 100 000 rows,
# against 0.15.
_SUBADDRESSES = Hot(select(func.count()).select_from(outbox).where(
    outbox.c.recipient >= bindparam("low"), outbox.c.recipient < bindparam("high"),
    or_(outbox.c.recipient.like(bindparam("pattern"), escape="\\"),
        outbox.c.recipient.like(bindparam("other_pattern"), escape="\\")),
    outbox.c.recipient.not_in(bindparam("counted", expanding=True)),
    outbox.c.automatic.is_(True), outbox.c.created_at > bindparam("since")))


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def notice_history(conn: Connection, *, ticket_id: int | None, recipient: str, addresses: list[str],
                   template: str, since: datetime,
                   mailbox: tuple[str, Sequence[str]] | None = None) -> NoticeHistory:
    """What loop protection needs to know about a notice's recipient (`addresses`: its spellings).

    `mailbox`: (local part, its domain's spellings: the first and last are
    asked for) of a subaddressed recipient (RFC 5233), whose count for the
    cap takes in the mailbox and all its subaddresses; bounces and
    acknowledgements stay the address's own.
    """
    counted = addresses if mailbox is None else list({*addresses, *(f"{mailbox[0]}@{d}" for d in mailbox[1])})
    bounced, sent, recent = _NOTICE_HISTORY.execute(conn, dict(
        ticket_id=ticket_id, recipient=recipient, addresses=addresses, addresses_again=counted,
        template=template, since=since)).rows[0]
    if mailbox is not None:
        local, domains = mailbox
        patterns = [f"{_like_escaped(local)}+%@{_like_escaped(domain)}" for domain in domains]
        recent += _SUBADDRESSES.execute(conn, dict(
            low=local + "+", high=local + ",", pattern=patterns[0], other_pattern=patterns[-1],
            counted=counted, since=since)).scalar()
    return NoticeHistory(bool(bounced), bool(sent), int(recent))


# The mail on a ticket outbound mail may name (In-Reply-To, References): the
# customer-side conversation, not an agent's mail (customers never received
# it) nor an internal note. Whether it is a robot's comes along, and whether
# it is the customers' own, a requester's or follower's (participants hold
# addresses in lower case): anyone else's (an agent's mail that failed the
# agent checks, an outsider's) never reached them, and its Message-ID names
# its writer's host, an agent's private domain say.
_FROM_CUSTOMER = func.lower(messages.c.from_addr).in_(
    select(participants.c.email).where(participants.c.ticket_id == bindparam("ticket_id"),
                                       participants.c.role.in_(("requester", "follower"))))
_THREAD = Hot(
    select(messages.c.message_id, messages.c.auto_generated, _FROM_CUSTOMER.label("from_customer"))
    .where(messages.c.ticket_id == bindparam("ticket_id"), messages.c.message_id.is_not(None),
           messages.c.internal.is_(False), messages.c.author_role != "agent")
    .order_by(messages.c.id))


@dataclass(frozen=True)
class Thread:
    """What mail about a ticket may answer and refer to."""
    references: list[str]     # the customers' own mail, the first and the latest, oldest first
    robots: frozenset[str]    # mail on the ticket that is no one's words: delivery reports, auto-replies


def ticket_thread(conn: Connection, ticket_id: int, limit: int = 20) -> Thread:
    """The ticket's conversation for threading headers, at most `limit` ids, and its robots' mail apart.

    A delivery report or an auto-reply joins the ticket as a message, but it
    is no part of the conversation: its Message-ID in our mail would thread
    the customer's copy onto a mail they never had (a bounce of our own mail).
    Nor is the mail of anyone but the ticket's requester and followers (_FROM_CUSTOMER).
    """
    rows = _THREAD.execute(conn, dict(ticket_id=ticket_id)).rows
    people = [message_id for message_id, robot, from_customer in rows if from_customer and not robot]
    return Thread(people[:1] + people[1:][-(limit - 1):], frozenset(m for m, robot, _ in rows if robot))


# Delivery's statements, built once (see ticketd/store/tickets.py). The
# claim is one conditional UPDATE that returns the rows it took (RETURNING:
# SQLite 3.35+, PostgreSQL), so a row is never read apart from its claim.
# It takes the job's own row and the oldest due rows behind it: their own
# jobs then find them taken and do nothing. `state = 'pending'` is checked
# again on the row itself, so two claims never take one row (PostgreSQL
# re-evaluates it on a row another transaction changed, under READ COMMITTED).
CLAIM_BATCH = 16

# Mail to one recipient about one ticket leaves in the order it was queued:
# an agent's reply before the "closed" mail queued with it or after it. A row
# is taken only at the head of its line, with no earlier row of its ticket
# and recipient still waiting or being sent; a retrying one holds the line,
# one that failed for good does not. So one claim never holds two rows of a
# line, and no two workers send them at once. A mail about no ticket
# (ticket_id NULL: summaries, desk replies) is in no line.
#
# "Earlier" is a lower id, and a claim sees only committed rows, so the rule
# holds only while a ticket's ids are in commit order. On SQLite one writer
# at a time makes them so. On PostgreSQL an id is taken from the sequence at
# insert, not at commit: they are in commit order because every transaction
# that queues mail about a ticket first locks its row (`lock_ticket`, SELECT
# ... FOR UPDATE: processing, agent mail, timers, assignment, the admin's
# commands, delivery's failure notice, `ticketd outbox retry`) and holds it
# until it commits, so the next one takes its ids after that commit; a
# ticket made in the transaction is seen by no other before then. A writer
# without the lock could commit a later row while an earlier one is still
# unseen, and it would be claimed first (tests/test_outbox_order_postgres.py).
# A row never becomes unsent again under its id: a failed mail sent again
# is queued anew (`requeue_failed`).
#
# The look-up goes through the partial index outbox_line (schema.sql), which
# holds only the unsent rows, whatever history a ticket has. The states are
# written into the SQL, not bound, and as the index's condition spells them
# (`state = 'pending' OR state = 'sending'`): SQLite uses a partial index
# only for a query whose WHERE has its condition's terms as written, and
# PostgreSQL cannot prove a bound value meets it in a generic plan (psycopg
# prepares a statement from its fifth run on a connection). Literal columns,
# not `literal(..., literal_execute=True)`, which renders them again at
# every execution (30 us of the claim's 300).
_PENDING, _SENDING = literal_column("'pending'"), literal_column("'sending'")
_EARLIER = outbox.alias("earlier")
_HEAD_OF_LINE = ~exists().where(
    _EARLIER.c.ticket_id == outbox.c.ticket_id, _EARLIER.c.recipient == outbox.c.recipient,
    _EARLIER.c.id < outbox.c.id, or_(_EARLIER.c.state == _PENDING, _EARLIER.c.state == _SENDING))
_DUE = (outbox.c.state == "pending", outbox.c.next_attempt_at <= bindparam("now"))
_CLAIM_DUE = (
    update(outbox)
    .where(*_DUE, _HEAD_OF_LINE, or_(outbox.c.id == bindparam("outbox_id"), outbox.c.id.in_(
        select(outbox.c.id).where(*_DUE, _HEAD_OF_LINE, outbox.c.id != bindparam("outbox_id"))
        .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(CLAIM_BATCH - 1))))
    .values(state="sending", claimed_at=bindparam("now"), claimed_by=bindparam("claimant"),
            attempts=outbox.c.attempts + 1)
    .returning(*outbox.c)
)
_NEXT_IN_LINE = select(func.min(outbox.c.id)).where(
    outbox.c.ticket_id == bindparam("ticket_id"), outbox.c.recipient == bindparam("recipient"),
    outbox.c.id > bindparam("after_id"), outbox.c.state == _PENDING)
_IS_DUE = select(outbox.c.id).where(outbox.c.id == bindparam("outbox_id"), *_DUE)

# A claim is the row as `claim_due` returned it: its claimant and claim time.
# Its outcome (due again, failed, given back untried) is written only while
# that claim still holds the row. One whose lease expired mid-send (a
# process paused, a clock jump) was taken back by the sweep and the row may
# have been claimed, sent or failed since: writing over that would send it
# once more, or report a mail failed that was delivered. The claim time
# tells two claims of one process apart.
_CLAIM_HELD = (outbox.c.id == bindparam("outbox_id"), outbox.c.state == "sending",
               outbox.c.claimed_by == bindparam("held_by"), outbox.c.claimed_at == bindparam("held_since"))
_UPDATE_HELD = update(outbox).where(*_CLAIM_HELD)
_RELEASE_HELD = (update(outbox).where(*_CLAIM_HELD)
                 .values(state="pending", claimed_at=None, claimed_by=None, attempts=outbox.c.attempts - 1))
# A 250 is written unless the row has an outcome already (sent by another
# claim, or failed): the mail is delivered, whoever holds the row now, and a
# row taken back and pending again must not go a second time.
_MARK_SENT = (update(outbox).where(outbox.c.id == bindparam("outbox_id"),
                                   or_(outbox.c.state == "pending", outbox.c.state == "sending"))
              .values(state="sent", sent_at=bindparam("now"), last_error=None))


def _held(row: dict) -> dict:
    return dict(outbox_id=row["id"], held_by=row["claimed_by"], held_since=row["claimed_at"])


# Read for every reply before its write transaction (ticketd.pipeline._without_pasted_mail).
_SENT_RAWS = Hot(select(outbox.c.raw).where(outbox.c.message_id.in_(bindparam("message_ids", expanding=True)))
                 .order_by(outbox.c.id.desc()).limit(bindparam("limit")))


def sent_raws(conn: Connection, message_ids: Sequence[str], limit: int = 3) -> list[bytes]:
    """The bytes of our mails that carry these Message-IDs (a reply's In-Reply-To and References), newest first."""
    if not message_ids:
        return []
    return [bytes(raw) for raw in _SENT_RAWS.execute(conn, dict(message_ids=list(message_ids), limit=limit)).scalars()]


def is_due(conn: Connection, outbox_id: int, now: datetime) -> bool:
    """Whether the row waits to be sent now (a read: no write lock for a job with nothing to do)."""
    return conn.execute(_IS_DUE, dict(outbox_id=outbox_id, now=now)).first() is not None


def claim_due(conn: Connection, outbox_id: int, now: datetime, claimant: str) -> list[dict]:
    """Take the row, if still due, and up to CLAIM_BATCH - 1 other due rows for `claimant` to send; the rows taken."""
    rows = conn.execute(_CLAIM_DUE, dict(outbox_id=outbox_id, now=now, claimant=claimant)).mappings().all()
    return sorted((dict(r) for r in rows), key=lambda r: (r["id"] != outbox_id, r["next_attempt_at"], r["id"]))


def next_in_line(conn: Connection, ticket_id: int | None, recipient: str, after_id: int) -> int | None:
    """The pending row that waited behind `after_id` (same ticket and recipient), if any."""
    if ticket_id is None:
        return None
    return conn.execute(_NEXT_IN_LINE, dict(ticket_id=ticket_id, recipient=recipient, after_id=after_id)
                        ).scalar_one_or_none()


def mark_sent(conn: Connection, outbox_id: int, now: datetime) -> bool:
    """The row's mail was delivered: sent, unless it has an outcome already; whether it was written."""
    return conn.execute(_MARK_SENT, dict(outbox_id=outbox_id, now=now)).rowcount == 1


def release(conn: Connection, claimed: list[dict]) -> None:
    """Give claimed rows that were not tried back, their attempt uncounted (those the claim still holds)."""
    if claimed:
        conn.execute(_RELEASE_HELD, [_held(row) for row in claimed])


def mark_retry(conn: Connection, claimed: dict, error: str, next_attempt_at: datetime) -> bool:
    """Back to pending, released, due again at `next_attempt_at`, if the claim still holds the row; whether it did."""
    return conn.execute(_UPDATE_HELD, dict(_held(claimed), state="pending", claimed_at=None, claimed_by=None,
                                           last_error=error, next_attempt_at=next_attempt_at)).rowcount == 1


def mark_failed(conn: Connection, claimed: dict, reason: str) -> bool:
    """Failed for good, if the claim still holds the row; whether it did."""
    return conn.execute(_UPDATE_HELD, dict(_held(claimed), state="failed", last_error=reason)).rowcount == 1


def release_expired_claims(conn: Connection, claimed_before: datetime) -> int:
    """Rows claimed before `claimed_before` go back to pending; how many."""
    return conn.execute(
        update(outbox).where(outbox.c.state == "sending", outbox.c.claimed_at < claimed_before)
        .values(state="pending", claimed_at=None, claimed_by=None,
                last_error="claim expired (worker stopped mid-send)")
    ).rowcount


def claims(conn: Connection) -> dict[str | None, datetime]:
    """Who holds `sending` rows (None: a claim made before claimants were named), with each one's oldest claim."""
    return dict(conn.execute(
        select(outbox.c.claimed_by, func.min(outbox.c.claimed_at)).where(outbox.c.state == "sending")
        .group_by(outbox.c.claimed_by)).all())


def release_claims_of(conn: Connection, claimant: str, reason: str) -> list[int]:
    """`claimant`'s rows go back to pending, their attempt counted (its mail may have gone); their ids."""
    return list(conn.execute(
        update(outbox).where(outbox.c.state == "sending", outbox.c.claimed_by == claimant)
        .values(state="pending", claimed_at=None, claimed_by=None, last_error=reason)
        .returning(outbox.c.id)).scalars())


def due_pending(conn: Connection, now: datetime, grace: timedelta, limit: int = 1000) -> list[tuple[int, datetime]]:
    """(id, next_attempt_at) of pending rows to enqueue: ones without a job when due, fresh ones after `grace`.

    A row with a last error has no job waiting for it: deferred after an
    attempt, released from an expired claim, or sent again by `ticketd
    outbox retry` (attempts reset to 0). A fresh row had its job enqueued
    at commit.
    """
    return conn.execute(
        select(outbox.c.id, outbox.c.next_attempt_at).where(
            outbox.c.state == "pending",
            or_(and_(or_(outbox.c.attempts > 0, outbox.c.last_error.is_not(None)), outbox.c.next_attempt_at <= now),
                outbox.c.next_attempt_at <= now - grace))
        .order_by(outbox.c.next_attempt_at).limit(limit)
    ).all()


# ---------------------------------------------------------------- the admin's view: list and retry

# What `ticketd outbox list` shows of a row: everything but the mail's bytes.
_LISTED = [c for c in outbox.c if c.name != "raw"]


# `ticketd outbox list --state dismissed`: the failed rows an admin dismissed, which `failed` leaves out.
DISMISSED = "dismissed"


def listed_rows(conn: Connection, states: Sequence[str]) -> Sequence[RowMapping]:
    """Rows in these states, without their bytes, newest first; `failed` is the failed rows not dismissed,
    `dismissed` the ones dismissed."""
    plain = [s for s in states if s not in ("failed", DISMISSED)]
    wanted = [outbox.c.state.in_(plain)] if plain else []
    if "failed" in states:
        wanted.append(and_(outbox.c.state == "failed", outbox.c.dismissed_at.is_(None)))
    if DISMISSED in states:
        wanted.append(and_(outbox.c.state == "failed", outbox.c.dismissed_at.is_not(None)))
    return conn.execute(select(*_LISTED).where(or_(*wanted)).order_by(outbox.c.id.desc())).mappings().all()


def state_of(conn: Connection, outbox_id: int) -> str | None:
    """The row's state, or None when there is no such row."""
    return conn.execute(select(outbox.c.state).where(outbox.c.id == outbox_id)).scalar_one_or_none()


# The row's recipient is marked bounced on its ticket: a delivery report proved the address undeliverable
# (outbound/bounces.py), as loop protection asks before every notice (_NOTICE_HISTORY).
_TO_BOUNCED = exists().where(participants.c.ticket_id == outbox.c.ticket_id,
                             participants.c.email == func.lower(outbox.c.recipient),
                             participants.c.bounced_at.is_not(None))


def failed_to_retry(conn: Connection, outbox_ids: Sequence[int] | None,
                    except_templates: Sequence[str] = (), except_bounced: bool = False) -> list[tuple[int, int | None]]:
    """(id, ticket_id) of the failed rows (these, or every one not dismissed when None, but
    `except_templates`, and but those to an address that bounced when `except_bounced`), by id."""
    stmt = select(outbox.c.id, outbox.c.ticket_id).where(outbox.c.state == "failed")
    if outbox_ids is not None:
        stmt = stmt.where(outbox.c.id.in_(list(outbox_ids)))
    else:   # an admin who dismissed one meant it not to go again; its ID still sends it
        stmt = stmt.where(outbox.c.dismissed_at.is_(None))
    if except_templates:
        stmt = stmt.where(outbox.c.template.not_in(list(except_templates)))
    if except_bounced:
        stmt = stmt.where(~_TO_BOUNCED)
    return [(i, t) for i, t in conn.execute(stmt.order_by(outbox.c.id)).all()]


def failed_to_bounced(conn: Connection, except_templates: Sequence[str] = ()) -> list[dict]:
    """The failed rows not dismissed (but `except_templates`) whose recipient bounced on their ticket, by id:
    id, ticket_id, template, recipient."""
    stmt = select(outbox.c.id, outbox.c.ticket_id, outbox.c.template, outbox.c.recipient).where(
        outbox.c.state == "failed", outbox.c.dismissed_at.is_(None), _TO_BOUNCED)
    if except_templates:
        stmt = stmt.where(outbox.c.template.not_in(list(except_templates)))
    return [dict(r) for r in conn.execute(stmt.order_by(outbox.c.id)).mappings()]


_TAKE_FAILED = delete(outbox).where(outbox.c.id == bindparam("outbox_id"), outbox.c.state == "failed").returning(
    *outbox.c)


def requeue_failed(conn: Connection, outbox_id: int, now: datetime) -> dict | None:
    """The failed row queued anew: pending, attempts reset, due now, under a new id; None if it is not failed.

    A line (ticket and recipient) goes in id order, and its rows must
    become visible in that order (the claim above): queued again under its
    old id, the mail would hold back the mail queued after it failed, or go
    while one of those is on the wire. So it takes its place as new mail
    does, at the end of its line, and the caller holds the ticket's lock
    (`lock_ticket`) as every writer of its outbox rows does.

    The bytes, and so the Message-ID, stay as they were: the retry is the
    same mail and threads as the first try would have. The last error is
    kept until a delivery replaces or clears it. Returns the new row's id
    and what names it, with the old id as `retried_id`.
    """
    old = conn.execute(_TAKE_FAILED, dict(outbox_id=outbox_id)).mappings().first()
    if old is None:
        return None
    new_id = conn.execute(_INSERT_ROW, dict(
        ticket_id=old["ticket_id"], message_row_id=old["message_row_id"], template=old["template"],
        recipient=old["recipient"], message_id=old["message_id"], automatic=old["automatic"], raw=old["raw"],
        state="pending", attempts=0, next_attempt_at=now, claimed_at=None, last_error=old["last_error"],
        created_at=now, sent_at=None)).scalar_one()
    return dict(id=new_id, retried_id=old["id"], ticket_id=old["ticket_id"], template=old["template"],
                recipient=old["recipient"], message_id=old["message_id"])


def failed_count(conn: Connection, templates: Sequence[str]) -> int:
    """How many failed rows of these templates there are, not dismissed."""
    return conn.execute(select(func.count()).select_from(outbox).where(
        outbox.c.state == "failed", outbox.c.template.in_(list(templates)), outbox.c.dismissed_at.is_(None))
    ).scalar_one()


def dismiss_failed(conn: Connection, outbox_ids: Sequence[int] | None, by: str, reason: str | None,
                   now: datetime) -> list[dict]:
    """Mark failed rows not yet dismissed (these, or every one when None) as looked at; what names each, by id.

    The row stays failed with its bytes and last error; `requeue_failed`
    still takes it by its id.
    """
    stmt = update(outbox).where(outbox.c.state == "failed", outbox.c.dismissed_at.is_(None))
    if outbox_ids is not None:
        stmt = stmt.where(outbox.c.id.in_(list(outbox_ids)))
    rows = conn.execute(stmt.values(dismissed_at=now, dismissed_by=by, dismiss_reason=reason).returning(
        outbox.c.id, outbox.c.ticket_id, outbox.c.template, outbox.c.recipient)).mappings().all()
    return sorted((dict(r) for r in rows), key=lambda r: r["id"])


def dismissal_of(conn: Connection, outbox_id: int) -> dict | None:
    """The row's state and dismissal (dismissed_at, dismissed_by); None when there is no such row."""
    row = conn.execute(select(outbox.c.state, outbox.c.dismissed_at, outbox.c.dismissed_by)
                       .where(outbox.c.id == outbox_id)).mappings().first()
    return None if row is None else dict(row)
