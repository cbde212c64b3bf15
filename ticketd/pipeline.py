"""Process one stored raw mail into a ticket: parse, loop-check, thread, decide, write.

Shape: load -> prepare (ticketd.prepare: parse, strip; maybe in another
process) -> decide (pure: ingest.match, ticketd.domain) -> write ticket,
message, events and outbox rows in one transaction -> commit -> enqueue by
id. Any exception quarantines the raw mail with the traceback, whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from ingest.html_text import html_to_text
from ingest.match import Match, ReplyAddress, choose_ticket, our_message_ticket, read_reply_addresses, referenced_ids
from ingest.parse import MailTooComplex, ParsedMail, parse_mail
from ingest.quotes import own_reply
from outbound.bounces import assignee_told, link_report
from outbound.outbox import queue_notices
from ticketd.agent_desk import apply_desk_mail, desk_agent
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.colleague_tag import tagged_ticket, tell_colleague
from ticketd.conversation import apply_followup, open_ticket, own_copy_after_list
from ticketd.copies import kept_copy
from ticketd.customer_auth import unvouched
from ticketd.domain.pasted_notice import notice_start
from ticketd.domain.tags import find_tags, same_subject
from ticketd.erase import remove_unnamed_files
from ticketd.prepare import (
    Deferred,
    InlinePreparer,
    Preparation,
    Prepared,
    failure_reason,
    prepare_or_reason,
    recipients,
    write_missing_files,
)
from ticketd.quarantined_reply import note_quarantined_reply
from ticketd.store import inbox
from ticketd.store import tickets as store
from ticketd.store.db import is_transient, out_of_resources, reading
from ticketd.store.merge import final_ticket, lock_final_ticket
from ticketd.store.outbox import sent_raws
from ticketd.store.write_queue import acknowledgement_waiting
from ticketd.ticket_changes import mail_ref

log = logging.getLogger("ticketd.pipeline")


@dataclass(frozen=True)
class Outcome:
    raw_id: int
    ticket_id: int | None
    matched_by: str | None
    quarantined: str | None = None


@dataclass
class Thread:
    """Which ticket a mail belongs to, and what led there."""
    match: Match
    reply: ReplyAddress | None   # the signed reply address it came through, if any
    # ticket named -> the ticket it was merged into, for every merged one the mail named
    redirected: dict[int, int] = field(default_factory=dict)
    # Matched by References naming only mail we received, none we sent: anyone who saw that mail
    # (a list, a forward) knows its Message-ID, so it proves no part in the ticket.
    by_received_id: bool = False
    # customer_auth: why our MTA did not vouch for From, when the match (a received Message-ID, a copy
    # of a mail of From's) rests on From alone: the mail is kept apart there. None when it need not or did.
    unvouched: str | None = None
    # The tickets the subject's tags named, where From takes part, not followed for want of that proof,
    # and why (the mail opens a ticket of its own).
    refused_tags: list[int] = field(default_factory=list)
    refused_because: str | None = None


def _resolved(conn, redirected: dict[int, int], ticket_id: int) -> int | None:
    """The ticket `ticket_id` stands for now (a merged one's final ticket, noted in `redirected`); None if erased."""
    final = final_ticket(conn, ticket_id)
    if final is not None and final != ticket_id:
        redirected[ticket_id] = final
    return final


def find_thread(conn, app: App, parsed: ParsedMail, addresses: list[ReplyAddress],
                copies: list[dict] | None = None) -> Thread:
    """PRODUCT.md's threading order over what the database holds; reads only.

    A ticket merged into another (`ticketd tickets merge`) stands for the
    one its chain ends at, so whatever names it (reply address,
    Message-IDs, tag) lands there; a ticket that no longer exists (erased)
    names none.
    """
    redirected: dict[int, int] = {}
    # A reply names its ticket by References and by tag alike: each ticket is followed once (a round trip on
    # PostgreSQL, bench/README.md). Reads only here, so the second answer is the first; lock_final_ticket
    # follows again under the lock.
    finals: dict[int, int | None] = {}

    def resolved(ticket_id: int) -> int | None:
        if ticket_id not in finals:
            finals[ticket_id] = _resolved(conn, redirected, ticket_id)
        return finals[ticket_id]

    reply = next((a for a in addresses if a.ticket_id is not None), None)
    reply_ticket = resolved(reply.ticket_id) if reply else None
    if reply_ticket is not None and reply_ticket != reply.ticket_id:
        # An agent's signed address for the merged ticket is theirs for the
        # one it went into: their #commands apply there (ticketd.agent_mail).
        reply = replace(reply, ticket_id=reply_ticket)
    referenced = referenced_ids(parsed.in_reply_to, parsed.references)
    signed = [t for t in (our_message_ticket(app.signer, app.settings.support_domain, m) for m in referenced) if t]
    signed = [t for t in dict.fromkeys(resolved(t) for t in dict.fromkeys(signed)) if t is not None]
    received = store.tickets_by_message_ids(conn, referenced)
    by_refs = [t for t in dict.fromkeys(signed + [resolved(t) for t in dict.fromkeys(received)]) if t is not None]
    # The sender must take part in the ticket the tag leads to: the merged
    # ticket's participants moved there.
    roles = {final: store.participant_role(conn, final, parsed.author)
             for final in dict.fromkeys(resolved(t) for t in find_tags(parsed.subject)) if final is not None}
    tagged = [final for final, role in roles.items() if role is not None]
    # A copy of a mail stored already, its bytes changed on the way (so the
    # dedupe key differs): where the sender's first copy went. The subject
    # must agree, list tags aside: a script that gives every mail one fixed
    # Message-ID must not pile its mails onto its first ticket.
    if copies is None:
        copies = store.kept_copies(conn, parsed.message_id, parsed.from_addr)
    first = copies[0] if copies else None
    copy_of = resolved(first["ticket_id"]) if first and same_subject(first["subject"] or "", parsed.subject) else None
    match = choose_ticket(reply_ticket, by_refs, tagged, copy_of)
    by_received_id = match.matched_by == "references" and not signed
    rests_on_from = by_received_id or match.matched_by in ("subject_tag", "message_id")
    doubt = unvouched(app.settings, parsed) if rests_on_from else None
    if doubt is not None and match.matched_by == "subject_tag":
        # Threading 3 asks that the sender take part in the ticket; From unproven does not say who sent
        # it, so the tag leads nowhere, as a stranger's does (ticketd.customer_auth). An agent's From on
        # their own ticket still leads there: such mail is no agent mail and changes nothing
        # (ticketd.customer_mail), and they are told how to write on it.
        agents_own = [t for t in tagged if roles[t] == "agent"]
        return Thread(choose_ticket(reply_ticket, by_refs, agents_own, copy_of), reply, redirected,
                      refused_tags=[t for t in tagged if t not in agents_own], refused_because=doubt)
    return Thread(match, reply, redirected, by_received_id=by_received_id, unvouched=doubt)


def _without_pasted_mail(conn, parsed: ParsedMail, stripped: str) -> str:
    """A reply's own text (`stripped`, as the reply stripper left it) without the mail of ours it answers,
    where the writer's client pasted that under the words in a shape the stripper does not know
    (ticketd.domain.pasted_notice): an agent's reply relayed it to the customer, agent-only lines and all.

    The paste is looked for in the whole text: the stripper may have cut inside it (at a line of ours that
    reads as an attribution, "Cust <cust@…> wrote on [#1]:"), leaving the block that introduces it, the
    signed address it names among its lines. What is above the paste is stripped again.
    """
    whole = parsed.text.replace("\r\n", "\n")
    for raw in sent_raws(conn, referenced_ids(parsed.in_reply_to, parsed.references)):
        try:
            ours = parse_mail(raw)
        except MailTooComplex:   # our own mail: not expected, and nothing to find in it then
            continue
        # The client pastes the part it showed: our HTML (as it made text of it), or our text.
        for shown in (ours.text, html_to_text(ours.html) if ours.html else ""):
            start = notice_start(whole, shown)
            if start is not None:
                return own_reply("\n".join(whole.split("\n")[:start])) or stripped
    return stripped


def _without_pasted_mails(app: App, prepared: list[tuple[int, Preparation]]) -> list[tuple[int, Preparation]]:
    """Each reply's own text without a mail of ours pasted under it (`_without_pasted_mail`), read before
    the write transaction: parsing our mail there would hold the write lock for it. A mail of ours a
    reply names was sent before the reply came, so it is committed already."""
    replies = [(i, prep) for i, (_, prep) in enumerate(prepared)
               if isinstance(prep, Prepared) and (prep.parsed.in_reply_to or prep.parsed.references)]
    if not replies:
        return list(prepared)
    done = list(prepared)
    with reading(app.engine) as conn:
        for i, prep in replies:
            own = _without_pasted_mail(conn, prep.parsed, prep.stripped)
            if own != prep.stripped:
                done[i] = (done[i][0], replace(prep, stripped=own))
    return done


def apply(conn, app: App, prep: Prepared, now) -> tuple[Outcome, list[tuple[str, tuple]]]:
    """Thread the prepared mail and write its consequences; returns the jobs for after commit."""
    settings = app.settings
    parsed = prep.parsed
    copies = store.kept_copies(conn, parsed.message_id, parsed.from_addr)
    # Most mail has no kept copy: its words are not split for nothing then (ticketd.copies).
    if copies and (copy := kept_copy(conn, prep, copies)) is not None:
        log.info("raw mail %s (Message-ID %s) is message %s of ticket %s again, its bytes changed on the way: "
                 "not added twice", prep.raw_id, parsed.message_id, copy.message_row_id, copy.ticket_id)
        own = IncomingMail(raw_id=prep.raw_id, parsed=parsed, text=prep.stripped, attachments=prep.attachments,
                           robot_reason=prep.robot_reason, matched_by="copy", reply_address=None, reactions=[],
                           html=prep.html, envelope_from=prep.envelope_from)
        outbox_ids = queue_notices(conn, app, own_copy_after_list(conn, app, own, copy, now), now)
        return Outcome(prep.raw_id, copy.ticket_id, "copy"), [("send_mail", (i,)) for i in outbox_ids]
    # A delivery report (RFC 3464, or a mail system's plain-text bounce)
    # proven to be about one of our mails (it names that mail's signed
    # Message-ID, see link_report) belongs to that mail's ticket, whatever
    # it reports, and a failed recipient is marked bounced there. Any other
    # report is robot mail, threaded by the rules below and never answered.
    report = link_report(conn, app, prep.raw, now, prep.envelope_from) if prep.robot_reason else None
    bounce = report.bounce if report else None

    addresses = read_reply_addresses(app.signer, settings.support_address, recipients(parsed, prep.envelope_to))
    if (agent := desk_agent(app, parsed, addresses)) is not None:
        # An agent's mail to their desk address is about no ticket. A robot's
        # (their vacation responder) is kept and not answered.
        notices = [] if prep.robot_reason else apply_desk_mail(conn, app, agent, parsed, prep.stripped, now)
        log.info("raw mail %s (Message-ID %s) -> desk of %s", prep.raw_id, parsed.message_id or "none",
                 agent.email)
        outbox_ids = queue_notices(conn, app, notices, now)
        return Outcome(prep.raw_id, None, "desk"), [("send_mail", (i,)) for i in outbox_ids]
    found = find_thread(conn, app, parsed, addresses, copies)
    match, reply, redirected = found.match, found.reply, found.redirected
    if report is not None and (about := _resolved(conn, redirected, report.ticket_id)) is not None:
        match = Match(about, "bounce" if bounce else "delivery_report")
    ticket = None
    if match.ticket_id is not None:
        # Locked, and followed again should a merge have committed since the
        # lookups above: a mail never lands on (nor reopens) a merged ticket.
        ticket = lock_final_ticket(conn, match.ticket_id)
        final = ticket["id"]
        if final != match.ticket_id:
            redirected[match.ticket_id] = final
            if reply is not None and reply.ticket_id == match.ticket_id:
                reply = replace(reply, ticket_id=final)
            match = Match(final, match.matched_by)

    mail = IncomingMail(
        raw_id=prep.raw_id, parsed=parsed,
        text=prep.stripped if match.ticket_id is not None else parsed.text.strip(),
        attachments=prep.attachments, robot_reason=prep.robot_reason, matched_by=match.matched_by,
        reply_address=reply, reactions=[a for a in addresses if a.reaction], html=prep.html,
        quoted_only=prep.quoted_only and match.ticket_id is not None, envelope_from=prep.envelope_from,
        by_received_id=found.by_received_id and match.matched_by == "references",
        unvouched=found.unvouched if match.matched_by == found.match.matched_by else None,
    )
    if match.ticket_id is None:
        decision = open_ticket(conn, app, mail, now)
        if found.refused_tags:
            _record_refused_tags(conn, mail, found, decision.ticket_id, now)
        if (named := tagged_ticket(conn, app, mail, lambda t: _resolved(conn, redirected, t))) is not None:
            decision.notices.append(tell_colleague(app, mail, named, decision.ticket_id))
            log.info("raw mail %s (Message-ID %s) from agent %s names [#%s], which they are not on: it opened "
                     "[#%s], and they are told how to write on [#%s]", prep.raw_id, parsed.message_id or "none",
                     parsed.author, named, decision.ticket_id, named)
    else:
        decision = apply_followup(conn, app, mail, ticket, now)
    if bounce is not None and match.matched_by == "bounce":
        decision.notices.extend(assignee_told(conn, bounce, decision.ticket_id))
    outbox_ids = queue_notices(conn, app, decision.notices, now, decision.ticket_row)
    merged = sorted(named for named, final in redirected.items() if final == decision.ticket_id)
    if merged:   # the history says why a mail naming another ticket is here
        store.add_event(conn, decision.ticket_id, now, "system:threading", "merge_followed",
                        reason=f"{mail_ref(mail)} names {', '.join(f'[#{t}]' for t in merged)}, merged into this one")
    log.info("raw mail %s (Message-ID %s) -> ticket %s by %s%s", prep.raw_id, parsed.message_id or "none",
             decision.ticket_id, match.matched_by,
             f" (it names {', '.join(f'[#{t}]' for t in merged)}, merged into it)" if merged else "")
    jobs = [("send_mail", (i,)) for i in outbox_ids] + list(decision.jobs)
    return Outcome(prep.raw_id, decision.ticket_id, match.matched_by), jobs


def _record_refused_tags(conn, mail: IncomingMail, found: Thread, opened: int, now) -> None:
    """Both histories say why a participant's tag opened a ticket (ticketd.customer_auth); no one is sent anything."""
    named = ", ".join(f"[#{t}]" for t in found.refused_tags)
    store.add_event(conn, opened, now, "system:threading", "unvouched_tag",
                    reason=f"{mail_ref(mail)} names {named}, where its From takes part, but {found.refused_because}: "
                           "customer_auth asks our mail server to vouch for From before a tag joins a ticket")
    for ticket_id in found.refused_tags:
        store.add_event(conn, ticket_id, now, "system:threading", "unvouched_tag",
                        reason=f"{mail_ref(mail)} From one of its participants names it, but {found.refused_because}: "
                               f"it opened [#{opened}] (customer_auth)")


class _OneFailed(Exception):
    """A mail of an unguarded batch failed: write the batch again with a savepoint per mail."""


class ProcessingDeferred(Exception):
    """A mail the desk cannot take now (ticketd.prepare.Deferred): it and the mail after it wait, in order."""

    def __init__(self, raw_id: int, reason: str) -> None:
        super().__init__(reason)
        self.raw_id = raw_id


def process_batch(app: App, raw_ids: list[int]) -> list[Outcome]:
    """Prepare and write raw mails in order, here and now (see `write_batch`)."""
    rows = inbox.load_raw(app.engine, raw_ids)
    return write_batch(app, [(row["id"], prepare_or_reason(app.settings, app.signer, row)) for row in rows])


def write_batch(app: App, prepared: list[tuple[int, Preparation]]) -> list[Outcome]:
    """Write prepared mails in order, in one transaction.

    Parsing happened before (`ticketd.prepare`), so the write lock is held
    only for the database work; one commit for the batch saves a sync per
    mail. A mail that fails rolls back alone and is quarantined with the
    reason (shunt, don't drop); the others commit. Savepoints cost two
    round trips per mail on PostgreSQL, so a batch is first written without
    them, and only when a mail fails is it rolled back and written again
    with one savepoint per mail. A deadlock, a lost connection or a
    database without room is not the mail's fault: it rolls the batch back
    and raises, and the processor's next pass takes the mails again. When mail waiting for its
    250 needs the write lock, the batch commits what it has and lets it
    through. A Deferred mail (data_dir full, say) is not the mail's fault
    either: what came before it commits, then ProcessingDeferred; it and
    what follows stay waiting, so that a reply never overtakes its original.
    """
    outcomes: list[Outcome] = []
    waiting = _without_pasted_mails(app, prepared)
    while waiting:
        try:
            done = _write_in_order(app, waiting, outcomes, guarded=False)
        except _OneFailed:
            done = _write_in_order(app, waiting, outcomes, guarded=True)
        waiting = waiting[done:]   # the next transaction queues behind the acknowledgement (write_queue)
    return outcomes


def _write_in_order(app: App, prepared: list[tuple[int, Preparation]], outcomes: list[Outcome], *,
                    guarded: bool) -> int:
    """Write prepared mails in one transaction, stopping early for a waiting acknowledgement; how many.

    Unguarded, a failing mail raises _OneFailed and the transaction rolls back whole.
    """
    jobs: list[tuple[str, tuple]] = []
    written: list[Outcome] = []
    with_files: list[Prepared] = []
    unnamed: set[str] = set()
    deferred: tuple[int, Deferred] | None = None
    done = 0
    with app.engine.begin() as conn:
        now = utcnow()
        taken = store.claim_raws(conn, [raw_id for raw_id, _ in prepared])
        for raw_id, prep in prepared:
            if done and acknowledgement_waiting(app.engine):
                break
            if isinstance(prep, Deferred) and raw_id in taken:
                deferred = (raw_id, prep)
                break
            done += 1
            if raw_id not in taken:
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
                    if is_transient(exc) or out_of_resources(exc):
                        raise   # the database's moment or room, not the mail: the next pass writes it again
                    unnamed.update(a["sha256"] for a in prep.attachments)   # written by prepare, named by no row
                    prep = failure_reason(exc)
                else:
                    written.append(outcome)
                    jobs.extend(mail_jobs)
                    if outcome.matched_by == "desk":   # about no ticket: stored as no message, its files in no row
                        unnamed.update(a["sha256"] for a in prep.attachments)
                    elif prep.attachments:
                        with_files.append(prep)
                    continue
            log.error("raw mail %s quarantined: %s", raw_id, prep.splitlines()[0])
            inbox.quarantine_in(conn, raw_id, prep, now)
            jobs.extend(_held_reply(conn, app, raw_id, prep, now))
            written.append(Outcome(raw_id, None, None, quarantined=prep))
        store.finish_raws(conn, [(o.raw_id, o.ticket_id) for o in written if o.quarantined is None], now)
        store.release_raws(conn, [raw_id for raw_id, _ in prepared[done:] if raw_id in taken])

    outcomes.extend(written)
    remove_unnamed_files(app.engine, app.settings.attachments_dir, unnamed)
    for prep in with_files:
        if rewritten := write_missing_files(app.settings, prep):
            log.warning("raw mail %s: %d attachment file(s) erased meanwhile were written again", prep.raw_id,
                        rewritten)
    for name, args in jobs:
        app.enqueue(name, args)
    if deferred is not None:
        raise ProcessingDeferred(deferred[0], deferred[1].reason)
    return done


def _held_reply(conn, app: App, raw_id: int, reason: str, now) -> list[tuple[str, tuple]]:
    """A quarantined customer's reply named on its ticket (ticketd.quarantined_reply); its send_mail jobs.

    Only on this rare path, and in a savepoint: whatever fails here leaves
    the mail quarantined all the same (shunt, don't drop).
    """
    try:
        with conn.begin_nested():
            notices = note_quarantined_reply(conn, app, raw_id, reason, now)
            return [("send_mail", (i,)) for i in queue_notices(conn, app, notices, now)]
    except Exception as exc:
        if is_transient(exc) or out_of_resources(exc):
            raise
        log.exception("raw mail %s: its ticket could not be told of its quarantine", raw_id)
        return []


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
    html: str | None = None              # the HTML part, sanitised (ticketd.prepare)
    quoted_only: bool = False            # a reply with only quoted text: `text` is then the whole text
    envelope_from: str | None = None     # SMTP MAIL FROM, else Return-Path (ticketd.prepare)
    by_received_id: bool = False         # threaded only by a received mail's Message-ID (Thread)
    unvouched: str | None = None         # so threaded, why our MTA did not vouch for From (Thread)


BATCH = 8  # mails per transaction: fewer syncs, yet the lock is never held long


def drain(app: App, limit: int = 500) -> int:
    """Process every waiting raw mail in arrival order; how many were taken.

    With a process preparer (`prepare_processes`), the next batch is parsed
    in another process while this one is written.
    """
    ids = inbox.pending_ids(app.engine, limit)
    app.backlog.pending(len(ids))   # `ticketd run`'s own jobs and sweeps give way to a burst (ticketd.backlog)
    batches = [ids[i:i + BATCH] for i in range(0, len(ids), BATCH)]
    preparer = app.preparer or InlinePreparer(app.settings, app.signer)
    taken = 0
    upcoming = preparer.submit(inbox.load_raw(app.engine, batches[0])) if batches else None
    for i in range(len(batches)):
        prepared = upcoming.result()
        if i + 1 < len(batches):
            upcoming = preparer.submit(inbox.load_raw(app.engine, batches[i + 1]))
        taken += len(write_batch(app, prepared))
    return taken
