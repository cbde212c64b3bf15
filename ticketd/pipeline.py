"""Process one stored raw mail into a ticket: parse, loop-check, thread, decide, write.

Shape: load -> decide (pure: ingest.match, ticketd.domain) -> write ticket,
message, events and outbox rows in one transaction -> commit -> enqueue by
id. Any exception quarantines the raw mail with the traceback, whole.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass

from ingest.match import (
    Match,
    ReplyAddress,
    choose_ticket,
    is_our_message_id,
    our_message_ticket,
    read_reply_addresses,
)
from ingest.parse import MailTooComplex, ParsedMail, parse_mail
from ingest.quotes import strip_reply
from outbound.bounces import link_bounce
from outbound.outbox import queue_notices
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.conversation import apply_followup, open_ticket
from ticketd.domain.loops import auto_generated_reason
from ticketd.domain.tags import find_tags
from ticketd.store import inbox
from ticketd.store import tickets as store
from ticketd.store.files import store_blob
from ticketd.store.write_queue import acknowledgement_waiting, let_acknowledgements_through

log = logging.getLogger("ticketd.pipeline")


@dataclass(frozen=True)
class Outcome:
    raw_id: int
    ticket_id: int | None
    matched_by: str | None
    quarantined: str | None = None


def _recipients(parsed: ParsedMail, envelope_to: list[str]) -> list[str]:
    # The envelope (SMTP RCPT TO) is the most direct witness; IMAP mail only
    # has headers, where the MTA usually records it in Delivered-To.
    extra = [parsed.headers.get(h, "") for h in ("delivered-to", "x-original-to", "envelope-to")]
    return [*envelope_to, *parsed.to, *parsed.cc, *[e.strip("<> ").lower() for e in extra if e]]


@dataclass(frozen=True)
class Prepared:
    """What can be learned from a raw mail without the database: done before any lock."""
    raw_id: int
    raw: bytes
    parsed: ParsedMail
    envelope_to: list[str]
    robot_reason: str | None
    stripped: str
    attachments: list[dict]


def prepare(app: App, row: dict) -> Prepared:
    """Parse, check for robots, strip quotes and store attachments (CPU and files only)."""
    settings = app.settings
    raw = bytes(row["raw"])
    try:
        parsed = parse_mail(raw, max_depth=settings.max_mime_depth, max_parts=settings.max_mime_parts)
    except MailTooComplex as exc:
        raise MailTooComplex(f"mail refused by the MIME limits: {exc}") from exc
    envelope_from = row["envelope_from"]
    if envelope_from is None and "return-path" in parsed.headers:
        envelope_from = parsed.headers["return-path"]
    robot_reason = auto_generated_reason(parsed.headers, envelope_from, parsed.from_addr, parsed.content_type)
    if is_our_message_id(app.signer, settings.support_domain, parsed.message_id) or (
            parsed.from_addr == settings.support_address):
        robot_reason = "our own mail reflected back"
    attachments = []
    for att in parsed.attachments:
        store_blob(settings.attachments_dir, att.sha256, att.data)  # by content: idempotent
        attachments.append(dict(filename=att.filename, content_type=att.content_type[:255], size=len(att.data),
                                sha256=att.sha256, content_id=att.content_id, inline=att.inline))
    envelope_to = json.loads(row["envelope_to"] or "[]")
    # Only a mail that can thread into a ticket is a reply worth stripping;
    # a mail with none of the three threading signals always opens a ticket.
    local = settings.support_address.split("@", 1)[0] + "+"
    may_follow_up = bool(parsed.in_reply_to or parsed.references or find_tags(parsed.subject) or any(
        r.lower().startswith(local) for r in _recipients(parsed, envelope_to)))
    stripped = strip_reply(parsed.text) if may_follow_up else parsed.text.strip()
    return Prepared(raw_id=row["id"], raw=raw, parsed=parsed, envelope_to=envelope_to,
                    robot_reason=robot_reason, stripped=stripped, attachments=attachments)


def apply(conn, app: App, prep: Prepared, now) -> tuple[Outcome, list[tuple[str, tuple]]]:
    """Thread the prepared mail and write its consequences; returns the jobs for after commit."""
    settings = app.settings
    parsed = prep.parsed
    # A delivery report on one of our outbox mails belongs to that mail's
    # ticket: the address is marked bounced there (RFC 3464).
    bounced_ticket = link_bounce(conn, prep.raw, now) if prep.robot_reason else None

    # -- thread matching, PRODUCT.md order
    addresses = read_reply_addresses(app.signer, settings.support_address, _recipients(parsed, prep.envelope_to))
    reply = next((a for a in addresses if a.ticket_id is not None), None)
    reply_ticket = reply.ticket_id if reply and store.get_ticket(conn, reply.ticket_id) else None
    referenced = parsed.in_reply_to + list(reversed(parsed.references))
    by_refs = [t for t in (our_message_ticket(app.signer, settings.support_domain, m) for m in referenced) if t]
    by_refs += store.tickets_by_message_ids(conn, referenced)
    by_refs = [t for t in dict.fromkeys(by_refs) if store.get_ticket(conn, t)]
    tagged = [t for t in find_tags(parsed.subject)
              if store.participant_role(conn, t, parsed.from_addr) is not None]
    match = choose_ticket(reply_ticket, by_refs, tagged)
    if bounced_ticket is not None and store.get_ticket(conn, bounced_ticket):
        match = Match(bounced_ticket, "bounce")

    mail = IncomingMail(
        raw_id=prep.raw_id, parsed=parsed,
        text=prep.stripped if match.ticket_id is not None else parsed.text.strip(),
        attachments=prep.attachments, robot_reason=prep.robot_reason, matched_by=match.matched_by,
        reply_address=reply, reactions=[a for a in addresses if a.reaction],
    )
    if match.ticket_id is None:
        decision = open_ticket(conn, app, mail, now)
    else:
        decision = apply_followup(conn, app, mail, match.ticket_id, now)
    outbox_ids = queue_notices(conn, app, decision.notices, now)
    store.finish_raw(conn, prep.raw_id, decision.ticket_id, now)
    log.info("raw mail %s (Message-ID %s) -> ticket %s by %s", prep.raw_id, parsed.message_id,
             decision.ticket_id, match.matched_by)
    jobs = [("send_mail", (i,)) for i in outbox_ids] + list(decision.jobs)
    return Outcome(prep.raw_id, decision.ticket_id, match.matched_by), jobs


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=8)


class _OneFailed(Exception):
    """A mail of an unguarded batch failed: write the batch again with a savepoint per mail."""


def process_batch(app: App, raw_ids: list[int]) -> list[Outcome]:
    """Process raw mails in order, in one transaction.

    Parsing happens before the transaction, so the write lock is held only
    for the database work; one commit for the batch saves a sync per mail.
    A mail that fails rolls back alone and is quarantined with the reason
    (shunt, don't drop); the others commit. Savepoints cost two round trips
    per mail on PostgreSQL, so a batch is first written without them, and
    only when a mail fails is it rolled back and written again with one
    savepoint per mail. When mail waiting for its 250 needs the write lock,
    the batch commits what it has and lets it through.
    """
    rows = inbox.load_raw(app.engine, raw_ids)
    prepared: dict[int, Prepared | str] = {}
    for row in rows:
        try:
            prepared[row["id"]] = prepare(app, row)
        except Exception as exc:
            prepared[row["id"]] = _failure(exc)

    outcomes: list[Outcome] = []
    waiting = list(prepared.items())
    while waiting:
        try:
            done = _write_in_order(app, waiting, outcomes, guarded=False)
        except _OneFailed:
            done = _write_in_order(app, waiting, outcomes, guarded=True)
        waiting = waiting[done:]
        if waiting:
            let_acknowledgements_through(app.engine)
    return outcomes


def _write_in_order(app: App, prepared: list[tuple[int, Prepared | str]], outcomes: list[Outcome], *,
                    guarded: bool) -> int:
    """Write prepared mails in one transaction, stopping early for a waiting acknowledgement; how many.

    Unguarded, a failing mail raises _OneFailed and the transaction rolls back whole.
    """
    jobs: list[tuple[str, tuple]] = []
    written: list[Outcome] = []
    done = 0
    with app.engine.begin() as conn:
        now = utcnow()
        for raw_id, prep in prepared:
            if done and acknowledgement_waiting(app.engine):
                break
            done += 1
            if not store.claim_raw(conn, raw_id):
                continue  # another processor took it
            if isinstance(prep, Prepared):
                try:
                    if guarded:
                        with conn.begin_nested():
                            outcome, mail_jobs = apply(conn, app, prep, now)
                    else:
                        outcome, mail_jobs = apply(conn, app, prep, now)
                except Exception as exc:
                    if not guarded:
                        raise _OneFailed from exc
                    prep = _failure(exc)
                else:
                    written.append(outcome)
                    jobs.extend(mail_jobs)
                    continue
            log.error("raw mail %s quarantined: %s", raw_id, prep.splitlines()[0])
            inbox.quarantine_in(conn, raw_id, prep, now)
            written.append(Outcome(raw_id, None, None, quarantined=prep))

    outcomes.extend(written)
    for name, args in jobs:
        app.enqueue(name, args)
    return done


def process_raw(app: App, raw_id: int) -> Outcome | None:
    """Process one raw mail; None if another processor already took it."""
    outcomes = process_batch(app, [raw_id])
    return outcomes[0] if outcomes else None


@dataclass(frozen=True)
class IncomingMail:
    """A parsed mail with what the pipeline learned about it."""
    raw_id: int
    parsed: ParsedMail
    text: str                       # quotes and signature stripped
    attachments: list[dict]
    robot_reason: str | None        # why it must not be answered, if it must not
    matched_by: str
    reply_address: ReplyAddress | None   # the signed reply address that matched, if any
    reactions: list[ReplyAddress]        # like/dislike addresses it was sent to


BATCH = 8  # mails per transaction: fewer syncs, yet the lock is never held long


def drain(app: App, limit: int = 500) -> int:
    """Process every waiting raw mail in arrival order; how many were taken."""
    ids = inbox.pending_ids(app.engine, limit)
    return sum(len(process_batch(app, ids[i:i + BATCH])) for i in range(0, len(ids), BATCH))
