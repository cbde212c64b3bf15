"""Reads and writes of tickets, participants, messages, attachments and events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from ticketd.store.db import insert_if_absent
from ticketd.store.driver import Hot
from ticketd.store.tables import (
    attachments,
    events,
    messages,
    participants,
    ratings,
    raw_mail,
    reactions,
    ticket_tags,
    tickets,
)

# ---------------------------------------------------------------- reads

# The statements of processing, delivery and assignment (every mail) are
# built once and executed with parameters: SQLAlchemy then reuses their
# compiled form, where building one per call (`select(...).where(x == 5)`)
# costs about 90 us to build and key it for the cache (bench/README.md,
# change 20) against 50 us to execute it. Those of processing go straight to
# the driver's cursor (`Hot`, ticketd/store/driver.py): executed through
# Core, the execution context cost several times what SQLite takes for them.
_TICKET = Hot(select(tickets).where(tickets.c.id == bindparam("ticket_id")))
_TICKET_FOR_UPDATE = Hot(_TICKET.statement.with_for_update())
_TICKETS_BY_MESSAGE_IDS = Hot(select(messages.c.message_id, messages.c.ticket_id).where(
    messages.c.message_id.in_(bindparam("message_ids", expanding=True))).order_by(messages.c.id))
_PARTICIPANT_ROLE = Hot(select(participants.c.role).where(
    participants.c.ticket_id == bindparam("ticket_id"), participants.c.email == bindparam("email")))
_PARTICIPANT_STANDING = Hot(select(participants.c.role, participants.c.bounced_at).where(
    participants.c.ticket_id == bindparam("ticket_id"), participants.c.email == bindparam("email")))


def get_ticket(conn: Connection, ticket_id: int) -> dict | None:
    return _TICKET.execute(conn, dict(ticket_id=ticket_id)).first()


def lock_ticket(conn: Connection, ticket_id: int) -> dict | None:
    """The ticket, locked for this transaction on PostgreSQL (SQLite locks the file)."""
    stmt = _TICKET_FOR_UPDATE if conn.dialect.name == "postgresql" else _TICKET
    return stmt.execute(conn, dict(ticket_id=ticket_id)).first()


def tickets_by_message_ids(conn: Connection, message_ids: Iterable[str]) -> list[int]:
    """Tickets holding any of these Message-IDs, in the order the ids were given.

    A Message-ID on several tickets (the same mail again with other bytes: a
    list's copy with its footer, or someone reusing another's id to catch the
    replies to it) leads to the ticket that stored it first, the original's.
    """
    ids = [m for m in message_ids if m]
    if not ids:
        return []
    rows = _TICKETS_BY_MESSAGE_IDS.execute(conn, dict(message_ids=ids)).rows
    by_id: dict[str, int] = {}
    for mid, tid in rows:
        by_id.setdefault(mid, tid)
    return [by_id[m] for m in ids if m in by_id]


_KEPT_COPIES = Hot(select(messages.c.id, messages.c.ticket_id, messages.c.subject, messages.c.full_text,
                      messages.c.html, messages.c.to_addrs, messages.c.cc_addrs, messages.c.raw_mail_id).where(
    messages.c.message_id == bindparam("message_id"), messages.c.from_addr == bindparam("from_addr"),
    messages.c.direction == "in").order_by(messages.c.id))
_ATTACHMENT_FILES = select(attachments.c.filename, attachments.c.sha256).where(
    attachments.c.message_id == bindparam("message_row_id"))
_RAW_BYTES = select(raw_mail.c.raw).where(raw_mail.c.id == bindparam("raw_id"))


def kept_copies(conn: Connection, message_id: str | None, from_addr: str | None) -> list[dict]:
    """The received messages with this Message-ID from this sender: id, ticket, subject, full text, HTML,
    To and Cc (lists), raw mail."""
    if not message_id or not from_addr:
        return []
    rows = _KEPT_COPIES.execute(conn, dict(message_id=message_id, from_addr=from_addr)).mappings()
    return [dict(r, to_addrs=json.loads(r["to_addrs"] or "[]"), cc_addrs=json.loads(r["cc_addrs"] or "[]"))
            for r in rows]


def attachment_files(conn: Connection, message_row_id: int) -> list[tuple[str, str]]:
    """(file name, sha256) of each file the message came with."""
    return [tuple(row) for row in conn.execute(_ATTACHMENT_FILES, dict(message_row_id=message_row_id))]


def raw_bytes(conn: Connection, raw_id: int | None) -> bytes | None:
    """A raw mail's bytes as stored; None without the row (or with its bytes erased: empty)."""
    if raw_id is None:
        return None
    raw = conn.execute(_RAW_BYTES, dict(raw_id=raw_id)).scalar_one_or_none()
    return bytes(raw) if raw else None


def participant_role(conn: Connection, ticket_id: int, email: str | None) -> str | None:
    if not email:
        return None
    return _PARTICIPANT_ROLE.execute(conn, dict(ticket_id=ticket_id, email=email.lower())).scalar()


def participant_standing(conn: Connection, ticket_id: int, email: str) -> tuple[str | None, datetime | None]:
    """participant_role and when their address bounced (None if it did not), in one round trip."""
    rows = _PARTICIPANT_STANDING.execute(conn, dict(ticket_id=ticket_id, email=email.lower())).rows
    return rows[0] if rows else (None, None)


def was_addressed(conn: Connection, ticket_id: int, email: str, *, except_row: int | None = None) -> bool:
    """Whether a mail on the ticket that vouches for it named `email` in To or Cc (the lists as add_message
    wrote them): one we sent, or one a person of the ticket wrote (its requester, a follower, an agent),
    never a robot's. Anyone's own mail names whom its writer likes, itself too: an outsider's (and
    `except_row`, the mail being judged) vouches for nobody."""
    email = email.lower()
    people = {p["email"] for p in participants_of(conn, ticket_id)}
    rows = conn.execute(select(messages.c.id, messages.c.direction, messages.c.from_addr, messages.c.auto_generated,
                               messages.c.to_addrs, messages.c.cc_addrs).where(messages.c.ticket_id == ticket_id))
    for row in rows:
        vouches = row.direction == "out" or (
            not row.auto_generated and (row.from_addr or "").lower() in people and row.from_addr.lower() != email)
        if row.id == except_row or not vouches:
            continue
        if any(str(a).lower() == email for listed in (row.to_addrs, row.cc_addrs) for a in json.loads(listed or "[]")):
            return True
    return False


def taken_off(conn: Connection, ticket_id: int, email: str):
    """The event (actor, at) that took `email` off the ticket's followers, when no later one put them back."""
    email = email.lower()
    last = conn.execute(
        select(events.c.kind, events.c.actor, events.c.at)
        .where(events.c.ticket_id == ticket_id,
               ((events.c.kind == "follower_removed") & (events.c.from_value == email))
               | ((events.c.kind == "follower_added") & (events.c.to_value == email)))
        .order_by(events.c.id.desc()).limit(1)).first()
    return last if last is not None and last.kind == "follower_removed" else None


def followers_of(conn: Connection, ticket_id: int) -> list[str]:
    """The addresses following the ticket (lower case), in the order they joined."""
    return [p["email"] for p in participants_of(conn, ticket_id) if p["role"] == "follower"]


def remove_follower(conn: Connection, ticket_id: int, email: str) -> bool:
    """Take a follower (never the requester or an agent) off the ticket; True if they were one."""
    return conn.execute(delete(participants).where(
        participants.c.ticket_id == ticket_id, participants.c.email == email.lower(),
        participants.c.role == "follower")).rowcount > 0


def name_participant(conn: Connection, ticket_id: int, email: str, name: str) -> bool:
    """Set a participant's display name where it is another; True if it changed."""
    return conn.execute(update(participants).where(
        participants.c.ticket_id == ticket_id, participants.c.email == email.lower(),
        func.coalesce(participants.c.name, "") != name).values(name=name)).rowcount > 0


def participants_of(conn: Connection, ticket_id: int) -> list[dict]:
    rows = conn.execute(
        select(participants).where(participants.c.ticket_id == ticket_id).order_by(participants.c.id)
    ).mappings().all()
    return [dict(r) for r in rows]


# Writes, built once likewise: `.values(**row)` would build, key and look
# up a new statement for every row. An UPDATE or INSERT executed without
# `.values()` sets the columns its parameters name.
_INSERT_TICKET = Hot(insert(tickets).returning(tickets.c.id))
_INSERT_TICKET_ROW = Hot(insert(tickets).returning(*tickets.c))
_INSERT_MESSAGE = Hot(insert(messages).returning(messages.c.id))
_INSERT_EVENT = Hot(insert(events))
_CLAIM_RAWS = Hot(
    update(raw_mail)
    .where(raw_mail.c.id.in_(bindparam("raw_ids", expanding=True)), raw_mail.c.state == "received")
    .values(state="processing", attempts=raw_mail.c.attempts + 1)
    .returning(raw_mail.c.id))
_RELEASE_RAWS = Hot(
    update(raw_mail)
    .where(raw_mail.c.id.in_(bindparam("raw_ids", expanding=True)), raw_mail.c.state == "processing")
    .values(state="received", attempts=raw_mail.c.attempts - 1))
_FINISH_RAW = Hot(update(raw_mail).where(raw_mail.c.id == bindparam("raw_id")).values(state="done", reason=None))
_UPDATE_TICKET = Hot(update(tickets).where(tickets.c.id == bindparam("ticket_id")))
_UPDATE_TICKET_ROW = Hot(_UPDATE_TICKET.statement.returning(*tickets.c))
_INSERT_ATTACHMENTS = Hot(insert(attachments))


def create_ticket(conn: Connection, **values) -> int:
    return _INSERT_TICKET.execute(conn, values).scalar()


def create_ticket_row(conn: Connection, **values) -> dict:
    """create_ticket, giving the whole row as get_ticket reads it (RETURNING): no read after the insert."""
    return _INSERT_TICKET_ROW.execute(conn, values).first()


def update_ticket(conn: Connection, ticket_id: int, now: datetime, **values) -> None:
    _UPDATE_TICKET.execute(conn, dict(values, updated_at=now, ticket_id=ticket_id))


def update_ticket_row(conn: Connection, ticket_id: int, now: datetime, **values) -> dict | None:
    """update_ticket, giving the whole row as get_ticket then reads it (RETURNING): no read after the update."""
    return _UPDATE_TICKET_ROW.execute(conn, dict(values, updated_at=now, ticket_id=ticket_id)).first()


def add_participant(conn: Connection, ticket_id: int, email: str, role: str, name: str | None, now: datetime) -> bool:
    """Add if absent, in one statement (ON CONFLICT DO NOTHING); True if added."""
    return insert_if_absent(conn, participants, dict(ticket_id=ticket_id, email=email.lower(), role=role,
                                                     name=name, created_at=now), ["ticket_id", "email"])


def add_message(conn: Connection, **values) -> int:
    for key in ("to_addrs", "cc_addrs"):
        if isinstance(values.get(key), list):
            values[key] = json.dumps(values[key])
    return _INSERT_MESSAGE.execute(conn, values).scalar()


def add_attachments(conn: Connection, message_row_id: int, rows: list[dict]) -> None:
    if rows:
        _INSERT_ATTACHMENTS.executemany(conn, [dict(_attachment_columns(r), message_id=message_row_id)
                                              for r in rows])


# Attachment headers are taken from the MIME parts as written (ingest.parse),
# not through ingest.headers, so they are fitted to their columns here, at
# the one place they are written: SQLite stores anything, PostgreSQL refuses
# NUL in text and a value longer than its VARCHAR, and the mail would be
# quarantined for good.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_WIDTH = 255          # attachments.filename, attachments.content_type
_CONTENT_ID_WIDTH = 998    # attachments.content_id


def _attachment_columns(row: dict) -> dict:
    """An attachment row with values its columns hold on either database.

    The file name and content type are only shown (the file is stored by its
    sha256), so they lose their control characters and are cut to width. A
    Content-ID is an id (RFC 2392) that an HTML part refers to: one with a
    control character or too long for its column is left out rather than
    altered, since an altered id could name another part of the mail; the
    part itself is kept, only no `cid:` link finds it.
    """
    filename = _CONTROL.sub("", row["filename"])[:_NAME_WIDTH] or "file.bin"
    content_type = _CONTROL.sub("", row["content_type"])[:_NAME_WIDTH] or "application/octet-stream"
    content_id = row.get("content_id")
    if content_id and (len(content_id) > _CONTENT_ID_WIDTH or _CONTROL.search(content_id)):
        content_id = None
    return dict(row, filename=filename, content_type=content_type, content_id=content_id)


def event_row(ticket_id: int, at: datetime, actor: str, kind: str, *, from_value: str | None = None,
              to_value: str | None = None, reason: str | None = None, message_row_id: int | None = None,
              rules_hash: str | None = None) -> dict:
    """An event's columns, for add_events."""
    return dict(ticket_id=ticket_id, at=at, actor=actor, kind=kind, from_value=from_value, to_value=to_value,
                reason=reason, message_id=message_row_id, rules_hash=rules_hash)


def add_event(conn: Connection, ticket_id: int, at: datetime, actor: str, kind: str, *,
              from_value: str | None = None, to_value: str | None = None, reason: str | None = None,
              message_row_id: int | None = None, rules_hash: str | None = None) -> None:
    """Insert one event."""
    _INSERT_EVENT.execute(conn, event_row(ticket_id, at, actor, kind, from_value=from_value, to_value=to_value,
                                          reason=reason, message_row_id=message_row_id, rules_hash=rules_hash))


def add_events(conn: Connection, rows: list[dict]) -> None:
    """Insert event_rows in their order, in one executemany: one round trip on PostgreSQL, not one each."""
    _INSERT_EVENT.executemany(conn, rows)


def add_tags(conn: Connection, ticket_id: int, tags: Iterable[str]) -> None:
    for tag in dict.fromkeys(tags):
        if conn.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket_id == ticket_id,
                                                        ticket_tags.c.tag == tag)).first() is None:
            conn.execute(insert(ticket_tags).values(ticket_id=ticket_id, tag=tag))


def get_message(conn: Connection, row_id: int) -> dict | None:
    row = conn.execute(select(messages).where(messages.c.id == row_id)).mappings().first()
    return dict(row) if row else None


def mark_written_by_person(conn: Connection, message_row_id: int) -> None:
    """A message kept as automatic mail is known to be a person's after all (ticketd.copies)."""
    conn.execute(update(messages).where(messages.c.id == message_row_id).values(auto_generated=False))


def first_message_id(conn: Connection, ticket_id: int) -> int | None:
    """The row of the mail that opened the ticket."""
    return conn.execute(select(func.min(messages.c.id)).where(messages.c.ticket_id == ticket_id)).scalar_one()


def note_texts(conn: Connection, ticket_id: int) -> list[str]:
    """Texts of the ticket's internal notes (#note), to keep them out of customer mail.

    Only applied notes: a rejected agent mail is internal too, but its text
    is what the agent will send again once the command is fixed.
    """
    noted = select(events.c.message_id).where(events.c.ticket_id == ticket_id, events.c.kind == "internal_note")
    return list(conn.execute(
        select(messages.c.text).where(messages.c.ticket_id == ticket_id, messages.c.internal.is_(True),
                                      messages.c.id.in_(noted))
    ).scalars())


def public_texts(conn: Connection, ticket_id: int, *, besides: Iterable[str] = ()) -> list[str]:
    """Texts of the ticket's mail its customers may see: theirs and the public replies; with `besides`,
    not the mail received from those addresses (an agent's kept as customer-side mail, which no customer
    was sent)."""
    query = select(messages.c.text).where(messages.c.ticket_id == ticket_id, messages.c.internal.is_(False))
    if besides := [address.lower() for address in besides]:
        query = query.where(~((messages.c.direction == "in") & func.lower(messages.c.from_addr).in_(besides)))
    return list(conn.execute(query).scalars())


def add_reaction(conn: Connection, message_row_id: int, reaction: str, by_addr: str, now: datetime) -> str | None:
    """Record a like/dislike, one per address and message; the reaction it replaced, "" if none, None if the same.

    A second click of the other link is a change of mind: the latest stands.
    """
    by_addr = by_addr.lower()[:320]
    if insert_if_absent(conn, reactions, dict(message_id=message_row_id, reaction=reaction, by_addr=by_addr,
                                              created_at=now), ["message_id", "by_addr"]):
        return ""
    where = (reactions.c.message_id == message_row_id, reactions.c.by_addr == by_addr)
    before = conn.execute(select(reactions.c.reaction).where(*where)).scalar_one()
    if before == reaction:
        return None
    conn.execute(update(reactions).where(*where).values(reaction=reaction, created_at=now))
    return before


def add_rating(conn: Connection, ticket_id: int, usefulness: int, speed: int, politeness: int,
               message_row_id: int | None, now: datetime) -> None:
    conn.execute(insert(ratings).values(ticket_id=ticket_id, usefulness=usefulness, speed=speed,
                                        politeness=politeness, message_id=message_row_id, created_at=now))


def replace_rating(conn: Connection, ticket_id: int, by_addr: str, usefulness: int, speed: int, politeness: int,
                   message_row_id: int, now: datetime) -> tuple[int, int, int] | None:
    """Store `by_addr`'s rating of the ticket in place of their earlier one; the one it replaced, None if none.

    One rating per person and ticket (PRODUCT.md: the reply to the closing
    mail is *the* rating). Theirs are the ratings whose message they wrote;
    a ticket merged into this one keeps the rating its own requester gave.
    Delete and insert in the caller's transaction: never two, never none.
    """
    theirs = conn.execute(
        select(ratings.c.id, ratings.c.usefulness, ratings.c.speed, ratings.c.politeness)
        .join(messages, messages.c.id == ratings.c.message_id)
        .where(ratings.c.ticket_id == ticket_id, func.lower(messages.c.from_addr) == by_addr.lower())
        .order_by(ratings.c.id)).all()
    if theirs:
        conn.execute(delete(ratings).where(ratings.c.id.in_([row.id for row in theirs])))
    add_rating(conn, ticket_id, usefulness, speed, politeness, message_row_id, now)
    return tuple(theirs[-1][1:]) if theirs else None


def claim_raws(conn: Connection, raw_ids: list[int]) -> set[int]:
    """Take received raw mails for processing, once, even with several processors; the ids taken.

    One statement for a batch (on PostgreSQL each statement is a round
    trip). The transaction must end with each taken mail finished,
    quarantined or released.
    """
    return set(_CLAIM_RAWS.execute(conn, dict(raw_ids=raw_ids)).scalars()) if raw_ids else set()


def release_raws(conn: Connection, raw_ids: list[int]) -> None:
    """Give taken mails back, untouched, for a later transaction (as if never taken)."""
    if raw_ids:
        _RELEASE_RAWS.execute(conn, dict(raw_ids=raw_ids))


def finish_raws(conn: Connection, finished: list[tuple[int, int | None]], now: datetime) -> None:
    """Mark taken mails done, each with its ticket: (raw id, ticket id) pairs, in one executemany."""
    if finished:
        _FINISH_RAW.executemany(conn, [dict(raw_id=raw_id, ticket_id=ticket_id, processed_at=now)
                                       for raw_id, ticket_id in finished])
