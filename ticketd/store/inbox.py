"""The raw-mail queue of record: store first, claim, finish or quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ingest.identity import HEAD_BYTES, candidate_keys, identity, same_mail
from ticketd.clock import utcnow
from ticketd.store.db import durably, reading
from ticketd.store.driver import Hot
from ticketd.store.tables import messages, raw_mail

_WIDTH = 998   # of raw_mail.envelope_from and raw_mail.message_id (schema.sql)


@dataclass(frozen=True)
class Stored:
    raw_id: int
    duplicate: bool
    derived: bool = False   # a different mail held its dedupe key: kept under a derived one


@dataclass(frozen=True)
class RawMail:
    """One mail as it arrived, before it is stored."""
    raw: bytes
    source: str
    dedupe_key: str
    message_id: str | None
    envelope_from: str | None = None
    envelope_to: list[str] | None = None
    mailbox: str | None = None

    def row(self) -> dict:
        # PostgreSQL text cannot hold NUL, nor a VARCHAR a longer value: an
        # envelope or header carrying either must not make the mail
        # unstorable (451 to every retry, and the sender bounces it days
        # later) when the bytes are fine. The text columns only describe the
        # mail; `raw` keeps every byte as it came.
        message_id = self.message_id.replace("\x00", "") if self.message_id else None
        if message_id and len(message_id) > _WIDTH:
            message_id = None   # left out, not cut, as ingest.headers.msgids does
        return dict(
            received_at=utcnow(), source=self.source, mailbox=self.mailbox,
            envelope_from=_envelope_text(self.envelope_from),
            envelope_to=json.dumps([_envelope_text(r) for r in self.envelope_to or []]),
            message_id=message_id or None,
            dedupe_key=self.dedupe_key, size=len(self.raw), raw=self.raw, state="received",
        )


def _envelope_text(address: str | None) -> str | None:
    """An SMTP envelope address as a text column can hold it: without NUL, at most 998 characters.

    The stored envelope is a record (and the null sender `<>` a loop signal,
    RFC 3834 section 2); nothing is ever sent to it, so a NUL dropped or an
    end cut changes no one's mail. The receiver's command line limit (RFC
    5321 section 4.5.3.1.4: 512 octets) keeps a real one far below the cut.
    """
    if address is None:
        return None
    return address.replace("\x00", "")[:_WIDTH]


# Built once, executed with parameters (see ticketd/store/tickets.py).
_INSERT_RAW = insert(raw_mail).returning(raw_mail.c.id)
# Several rows in one statement (SQLAlchemy's "insertmanyvalues"). Their ids come in no set order; each
# names its key, distinct within the rows. (Asked to keep the rows' order, SQLAlchemy inserts one row per
# statement on SQLite.)
_INSERT_RAWS = insert(raw_mail).returning(raw_mail.c.dedupe_key, raw_mail.c.id)
_KNOWN_KEYS = select(raw_mail.c.dedupe_key, raw_mail.c.id).where(
    raw_mail.c.dedupe_key.in_(bindparam("keys", expanding=True)))
# Only run when a key collides: the rows under a mail's candidate keys, with
# the start of their bytes (their head is all ingest.identity reads).
_CANDIDATES = select(raw_mail.c.dedupe_key, raw_mail.c.id,
                     func.substr(raw_mail.c.raw, 1, HEAD_BYTES, type_=raw_mail.c.raw.type),
                     raw_mail.c.envelope_from).where(
    raw_mail.c.dedupe_key.in_(bindparam("keys", expanding=True)))
_WAITING_ROWS = Hot(select(raw_mail).where(raw_mail.c.id.in_(bindparam("ids", expanding=True)),
                                           raw_mail.c.state == "received"))


def store_raw_batch(engine: Engine, mails: list[RawMail]) -> list[Stored]:
    """Commit several mails in one transaction (one fsync: group commit).

    A mail whose key is already taken (stored before, or earlier in the
    batch) is settled by _settle_collision: a duplicate is answered with the
    first row, a different mail is kept under a derived key. If another
    writer races us to a key, the whole batch falls back to one transaction
    per mail, which settles who was first.
    """
    keys = [m.dedupe_key for m in mails]
    try:
        with durably(engine) as conn, conn.begin():
            # One query for the whole batch; a mail whose key is free costs
            # nothing more than its INSERT.
            known = dict(conn.execute(_KNOWN_KEYS, dict(keys=list(set(keys)))).all())
            if not known and len(set(keys)) == len(keys):
                # No key taken, none twice: every mail is new, and all go in one INSERT.
                ids = dict(conn.execute(_INSERT_RAWS, [mail.row() for mail in mails]).all())
                return [Stored(ids[key], False) for key in keys]
            results = []
            for mail in mails:
                if mail.dedupe_key in known:
                    results.append(_settle_collision(conn, mail))
                    continue
                raw_id = conn.execute(_INSERT_RAW, mail.row()).scalar_one()
                known[mail.dedupe_key] = raw_id
                results.append(Stored(raw_id, False))
        return results
    except IntegrityError:
        return [store_raw(engine, m.raw, source=m.source, dedupe_key=m.dedupe_key, message_id=m.message_id,
                          envelope_from=m.envelope_from, envelope_to=m.envelope_to, mailbox=m.mailbox)
                for m in mails]


# How often a collision is settled again when another writer takes the key
# we chose between our read and our INSERT; each round sees that row.
_SETTLE_ATTEMPTS = 5


def store_raw(
    engine: Engine,
    raw: bytes,
    *,
    source: str,
    dedupe_key: str,
    message_id: str | None,
    envelope_from: str | None = None,
    envelope_to: list[str] | None = None,
    mailbox: str | None = None,
) -> Stored:
    """Commit the bytes; a second delivery of the same mail returns the first row, a different mail gets its own."""
    mail = RawMail(raw, source, dedupe_key, message_id, envelope_from, envelope_to, mailbox)
    try:
        with durably(engine) as conn, conn.begin():
            raw_id = conn.execute(_INSERT_RAW, mail.row()).scalar_one()
        return Stored(raw_id, False)
    except IntegrityError:
        pass
    attempts = _SETTLE_ATTEMPTS
    while True:
        try:
            with durably(engine) as conn, conn.begin():
                return _settle_collision(conn, mail)
        except IntegrityError:
            attempts -= 1
            if not attempts:
                raise


def _settle_collision(conn: Connection, mail: RawMail) -> Stored:
    """A mail whose dedupe key is taken: the row of the same mail, or a new row under a derived key.

    Two different mails can share a key: the key is the Message-ID and the
    body, and a Message-ID is only meant to be unique (RFC 5322 section
    3.6.4); broken clients reuse them, forgers copy them, and two customers
    may both write just "Thanks". The key stays as it was first written, so
    that a redelivery after an upgrade still collides; ingest.identity
    decides whether the mails under the mail's candidate keys are this one,
    and which derived key a different one takes.
    """
    ident = identity(mail.raw, mail.envelope_from)
    candidates = candidate_keys(mail.dedupe_key, ident)
    rows = {key: (raw_id, head, sender)
            for key, raw_id, head, sender in conn.execute(_CANDIDATES, dict(keys=candidates))}
    for key in candidates:
        # A row without bytes is a tombstone (ticketd.store.erase: erased, or
        # dropped by retention): only its key is left, and that key stands for
        # the mail it was, so a redelivery never brings an erased mail back.
        if key in rows and (not rows[key][1] or same_mail(identity(bytes(rows[key][1]), rows[key][2]), ident)):
            return Stored(rows[key][0], True)
    free = next((key for key in candidates if key not in rows), None)
    if free is None:
        # candidate_keys gives the last key only to a mail with this Date and
        # From, which same_mail always takes for this mail.
        raise RuntimeError(f"no free dedupe key for Message-ID {mail.message_id}: {candidates}")
    raw_id = conn.execute(_INSERT_RAW, dict(mail.row(), dedupe_key=free)).scalar_one()
    return Stored(raw_id, False, derived=True)


def newest_heads(conn: Connection, count: int, head_bytes: int) -> list[bytes]:
    """The first `head_bytes` of the newest `count` mails that still hold their bytes, newest first."""
    rows = conn.execute(select(func.substr(raw_mail.c.raw, 1, head_bytes)).where(raw_mail.c.size > 0)
                        .order_by(raw_mail.c.id.desc()).limit(count)).scalars().all()
    return [bytes(row) for row in rows]


def pending_ids(engine: Engine, limit: int = 500) -> list[int]:
    """Raw mails still waiting to be processed, oldest first."""
    with reading(engine) as conn:
        return list(conn.execute(
            select(raw_mail.c.id).where(raw_mail.c.state == "received").order_by(raw_mail.c.id).limit(limit)
        ).scalars())


def load_raw(engine: Engine, raw_ids: list[int]) -> list[dict]:
    """Raw rows still waiting, in the order given."""
    with reading(engine) as conn:
        rows = {r["id"]: r for r in _WAITING_ROWS.execute(conn, dict(ids=list(raw_ids))).mappings()}
    return [rows[i] for i in raw_ids if i in rows]


def quarantine_in(conn: Connection, raw_id: int, reason: str, now: datetime) -> None:
    """Set a claimed mail aside with the reason; its bytes stay as they came."""
    conn.execute(update(raw_mail).where(raw_mail.c.id == raw_id).values(
        state="quarantined", reason=reason, processed_at=now))


def requeue(engine: Engine, raw_id: int) -> bool:
    """Put a quarantined mail back in line, dismissed or not; False if it was not quarantined.

    A dismissal goes with it: should the mail fail again, that failure is
    news the admin has not looked at.
    """
    with engine.begin() as conn:
        result = conn.execute(
            update(raw_mail).where(raw_mail.c.id == raw_id, raw_mail.c.state == "quarantined").values(
                state="received", reason=None, dismissed_at=None, dismissed_by=None, dismiss_reason=None
            )
        )
    return result.rowcount == 1


def dismiss_quarantined(conn: Connection, raw_ids: list[int] | None, by: str, reason: str | None,
                        now: datetime) -> list[int]:
    """Mark quarantined mail not yet dismissed (these, or every one when None) as looked at; the ids marked.

    Nothing else changes: the bytes, the reason and the state stay, and
    `requeue` still takes it.
    """
    stmt = update(raw_mail).where(raw_mail.c.state == "quarantined", raw_mail.c.dismissed_at.is_(None))
    if raw_ids is not None:
        stmt = stmt.where(raw_mail.c.id.in_(raw_ids))
    marked = conn.execute(stmt.values(dismissed_at=now, dismissed_by=by, dismiss_reason=reason)
                          .returning(raw_mail.c.id)).scalars().all()
    return sorted(marked)


def quarantine_of(conn: Connection, raw_id: int) -> dict | None:
    """The mail's state and dismissal (dismissed_at, dismissed_by); None when there is no such mail."""
    row = conn.execute(select(raw_mail.c.state, raw_mail.c.dismissed_at, raw_mail.c.dismissed_by)
                       .where(raw_mail.c.id == raw_id)).mappings().first()
    return None if row is None else dict(row)


def fate_of(conn: Connection, raw_id: int) -> dict | None:
    """What became of a mail: its state, quarantine reason, ticket, and how its message was threaded
    (matched_by, None when no message of it was stored); None when there is no such mail."""
    row = conn.execute(
        select(raw_mail.c.state, raw_mail.c.reason, raw_mail.c.ticket_id, messages.c.matched_by)
        .select_from(raw_mail.outerjoin(messages, messages.c.raw_mail_id == raw_mail.c.id))
        .where(raw_mail.c.id == raw_id).order_by(messages.c.id).limit(1)).mappings().first()
    return None if row is None else dict(row)
