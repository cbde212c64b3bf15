"""Erasure in the database: a ticket with everything stored for it, a person's traces, raw mail made tombstones."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, Table, delete, func, or_, select, update

from ingest.identity import HEAD_BYTES, identity
from ingest.mentions import names_address
from ticketd.clock import iso
from ticketd.domain.erase import ERASED_TEXT, status_given_back
from ticketd.store.tables import (
    agent_absences,
    attachments,
    events,
    messages,
    outbox,
    participants,
    ratings,
    raw_mail,
    reactions,
    rr_cursor,
    ticket_tags,
    tickets,
    timers,
)
from ticketd.store.tickets import add_event, add_participant, lock_ticket, taken_off

# States of raw mail an erasure may turn into a tombstone: not `processing`,
# which a processor holds and finishes in its own transaction.
_AT_REST = ("received", "quarantined", "done")


@dataclass
class Erased:
    """What an erasure removed or blanked, counted, and the attachment files it may have freed."""
    tickets: list[int] = field(default_factory=list)
    messages: int = 0
    messages_blanked: int = 0
    messages_returned: int = 0    # merged onto a forgotten person's ticket, back on the ticket they came from
    attachments: int = 0
    events: int = 0
    events_anonymised: int = 0
    participants: int = 0
    tags: int = 0
    timers: int = 0
    ratings: int = 0
    reactions: int = 0
    outbox: int = 0
    raw_mail: int = 0
    addresses_removed: int = 0
    raw_bytes_dropped: int = 0    # processed raw mail that kept its row and lost its bytes (retention)
    files_removed: int = 0        # attachment files no row names any more
    files: set[str] = field(default_factory=set)   # sha256 of the attachment rows deleted

    def counts(self) -> dict[str, int]:
        """Every count by name, `tickets` being how many tickets were erased."""
        counted = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("tickets", "files")}
        return {"tickets": len(self.tickets), **counted}

    def absorb(self, other: Erased) -> None:
        """Add another erasure's counts, tickets and files to these."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, set):
                mine |= theirs
            else:
                setattr(self, f.name, mine + theirs)


def _delete(conn: Connection, table: Table, where: ColumnElement) -> int:
    return conn.execute(delete(table).where(where)).rowcount


def _tombstone(conn: Connection, where: ColumnElement, now: datetime, why: str) -> int:
    """Raw mail reduced to its dedupe key: the bytes and what names the sender go, the row stays.

    The key keeps a redelivery of the same mail (an SMTP retry, an IMAP
    refetch) a duplicate (ticketd.store.inbox), so an erased ticket is not
    opened again by its own mail. `size` becomes 0, the size of what is
    kept: the row then says truly what it holds. An admin's dismissal of
    quarantined mail goes too: its words may name the person, and an erased
    row is nobody's to look at.
    """
    return conn.execute(update(raw_mail).where(where, raw_mail.c.state.in_(_AT_REST)).values(
        raw=b"", size=0, envelope_from=None, envelope_to=None, message_id=None, state="erased",
        reason=f"erased {iso(now)} by {why}", ticket_id=None,
        dismissed_at=None, dismissed_by=None, dismiss_reason=None)).rowcount


# ---------------------------------------------------------------- one ticket


def erase_ticket(conn: Connection, ticket_id: int, now: datetime, why: str, erased: Erased, *,
                 closed_before: datetime | None = None) -> bool:
    """Delete the ticket and every row stored for it, in the caller's transaction; False if there is none.

    With `closed_before`, only a ticket still closed before then, and not
    merged into another since, is erased (retention: a reply may have
    reopened it since it was found due; closed_tickets_due). The
    tickets merged into it are locked before it (lock_merged_first), which
    their rows change below.
    """
    ticket = lock_merged_first(conn, ticket_id)
    if ticket is None:
        return False
    if closed_before is not None and not (
            ticket["status"] == "closed" and ticket["closed_at"] is not None and ticket["closed_at"] < closed_before
            and ticket["merged_into"] is None):
        return False
    own = select(messages.c.id).where(messages.c.ticket_id == ticket_id)
    own_raw = select(messages.c.raw_mail_id).where(messages.c.ticket_id == ticket_id,
                                                   messages.c.raw_mail_id.is_not(None))
    erased.files |= set(conn.execute(select(attachments.c.sha256).where(attachments.c.message_id.in_(own))).scalars())
    erased.attachments += _delete(conn, attachments, attachments.c.message_id.in_(own))
    erased.reactions += _delete(conn, reactions, reactions.c.message_id.in_(own))
    erased.events += _delete(conn, events, events.c.ticket_id == ticket_id)
    erased.ratings += _delete(conn, ratings, ratings.c.ticket_id == ticket_id)
    # Mail to it in any state: pending mail is no longer sent; a delivery
    # that already claimed a row finds it gone and records nothing
    # (outbound.delivery: its UPDATEs then match no row).
    erased.outbox += _delete(conn, outbox, outbox.c.ticket_id == ticket_id)
    # A row of another ticket pointing at one of its messages stays with that ticket, without the pointer.
    for column in (events.c.message_id, ratings.c.message_id, outbox.c.message_row_id):
        conn.execute(update(column.table).where(column.in_(own)).values({column.name: None}))
    erased.timers += _delete(conn, timers, timers.c.ticket_id == ticket_id)
    erased.participants += _delete(conn, participants, participants.c.ticket_id == ticket_id)
    erased.tags += _delete(conn, ticket_tags, ticket_tags.c.ticket_id == ticket_id)
    erased.raw_mail += _tombstone(conn, or_(raw_mail.c.ticket_id == ticket_id, raw_mail.c.id.in_(own_raw)), now, why)
    erased.messages += _delete(conn, messages, messages.c.ticket_id == ticket_id)
    # Tickets merged into it (`tickets merge`) lead where it led, so a chain
    # S1 -> S2 -> T keeps leading S1's mail to T when S2 goes; at the end of
    # a chain they lead nowhere, and their mail is theirs again.
    conn.execute(update(tickets).where(tickets.c.merged_into == ticket_id)
                 .values(merged_into=ticket["merged_into"]))
    conn.execute(delete(tickets).where(tickets.c.id == ticket_id))
    erased.tickets.append(ticket_id)
    return True


# ---------------------------------------------------------------- one person


def tickets_requested_by(conn: Connection, address: str) -> list[int]:
    """Ids of the tickets whose requester is `address` (lower case), oldest first."""
    return list(conn.execute(select(tickets.c.id).where(func.lower(tickets.c.requester) == address)
                             .order_by(tickets.c.id)).scalars())


def lock_merged_first(conn: Connection, ticket_id: int) -> dict | None:
    """Lock every ticket merged into `ticket_id`, farthest along its chain first, then it; its row, or None.

    Processing a mail to a merged ticket locks its way along the chain,
    source before target (ticketd.store.merge.lock_final_ticket). Taking
    them in that order too, the erasure waits for such a mail instead of
    deadlocking with it on PostgreSQL (SQLite's writers take turns).
    """
    levels: list[list[int]] = []
    seen = {ticket_id}
    frontier = [ticket_id]
    while frontier:
        frontier = sorted(set(conn.execute(select(tickets.c.id).where(tickets.c.merged_into.in_(frontier)))
                              .scalars()) - seen)
        seen.update(frontier)
        levels.append(frontier)
    for level in reversed(levels):
        for source in level:
            lock_ticket(conn, source)
    return lock_ticket(conn, ticket_id)


def return_merged(conn: Connection, ticket_id: int, addresses: set[str], now: datetime, why: str,
                  erased: Erased) -> dict[int, str]:
    """Give the conversations merged into `ticket_id`, a ticket the person of `addresses` (lower case, each
    spelling) opened, back to the other people's tickets they came from, in the caller's transaction.

    Another customer's ticket merged into theirs is not theirs: erasing it
    with their ticket would erase a person who asked for nothing, and leave
    their ticket closed, empty, and pointing nowhere. Each source's own
    history names its messages (a merge leaves events behind); they go to
    the last ticket of its merge chain before the person's, with its
    rating, reactions, files and raw mail, and its people (requester,
    followers, the agents who worked it) join it again as the merge had them,
    and so do its tags. Returned: {ticket given back: the status it goes back
    to} (status_given_back), for the caller to set with its timers.
    """
    ticket = lock_merged_first(conn, ticket_id)
    if ticket is None or ticket["merged_into"] is not None:
        return {}   # merged itself: the conversation is on the ticket its chain ends at, which stays
    sources = [s for s in _merged_sources(conn, ticket_id) if (s["requester"] or "").lower() not in addresses]
    if not sources:
        return {}
    on_ticket = select(messages.c.id).where(messages.c.ticket_id == ticket_id)
    people = {p.email: p for p in conn.execute(select(participants).where(participants.c.ticket_id == ticket_id))}
    by_id = {s["id"]: s for s in sources}
    into: dict[int, list[int]] = {}
    for source in sources:
        into.setdefault(_end_before(source, by_id), []).append(source["id"])
    given_back: dict[int, str] = {}
    for destination, group in sorted(into.items()):
        moved = list(conn.execute(select(events.c.message_id).where(
            events.c.ticket_id.in_(group), events.c.message_id.in_(on_ticket)).distinct()).scalars())
        if not moved:
            continue
        _move_messages(conn, ticket_id, destination, moved)
        erased.messages_returned += len(moved)
        _rejoin(conn, destination, [s for s in sources if s["id"] in group], people, now)
        _rejoin_agents(conn, destination, group, people, now)
        _retag(conn, ticket_id, destination, group)
        given_back[destination] = status_given_back(_status_before_merge(conn, destination), ticket["status"])
        add_event(conn, destination, now, "admin:cli", "unmerged", from_value=f"[#{ticket_id}]",
                  to_value=f"[#{destination}]",
                  reason=f"[#{ticket_id}], which this ticket's conversation was merged into, was erased by {why}: "
                         f"its conversation is back here (messages {len(moved)})")
    return given_back


def _status_before_merge(conn: Connection, ticket_id: int) -> str | None:
    """The status the ticket had when it was merged (its latest `merged_into` event), None if unknown."""
    return conn.execute(select(events.c.from_value).where(events.c.ticket_id == ticket_id,
                                                          events.c.kind == "merged_into")
                        .order_by(events.c.id.desc()).limit(1)).scalar()


def _rejoin_agents(conn: Connection, destination: int, group: list[int], people: dict, now: datetime) -> None:
    """The agents on the erased ticket who worked a ticket of `group` (its assignee, or in its history) on
    `destination` again: the merge moved them over, and the answer they owe is theirs."""
    worked = {a.lower() for a in conn.execute(select(tickets.c.assignee).where(tickets.c.id.in_(group))).scalars()
              if a}
    for actor, kind, to_value in conn.execute(select(events.c.actor, events.c.kind, events.c.to_value)
                                              .where(events.c.ticket_id.in_(group))).all():
        worked.add((actor or "").lower())
        if kind == "assigned" and to_value:
            worked.add(to_value.lower())
    for email, person in sorted(people.items()):
        if person.role == "agent" and email in worked:
            add_participant(conn, destination, email, "agent", person.name, now)


def _retag(conn: Connection, from_ticket: int, destination: int, group: list[int]) -> None:
    """The tags routes gave the tickets of `group` (their `tags` events), back on `destination` while the
    erased ticket still has them: the merge moved them there."""
    given = {tag.strip() for value in conn.execute(select(events.c.to_value).where(
        events.c.ticket_id.in_(group), events.c.kind == "tags")).scalars() for tag in (value or "").split(",")}
    kept = set(conn.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket_id == from_ticket)).scalars())
    there = set(conn.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket_id == destination)).scalars())
    for tag in sorted((given & kept) - there):
        conn.execute(ticket_tags.insert().values(ticket_id=destination, tag=tag))


def _merged_sources(conn: Connection, ticket_id: int) -> list[dict]:
    """Every ticket whose merge chain ends at `ticket_id`, with where it was merged and who opened it."""
    found: dict[int, dict] = {}
    frontier = [ticket_id]
    while frontier:
        step = conn.execute(select(tickets.c.id, tickets.c.merged_into, tickets.c.requester)
                            .where(tickets.c.merged_into.in_(frontier))).mappings()
        new = [dict(row) for row in step if row["id"] not in found and row["id"] != ticket_id]
        found.update((row["id"], row) for row in new)
        frontier = [row["id"] for row in new]
    return [found[t] for t in sorted(found)]


def _end_before(source: dict, others: dict[int, dict]) -> int:
    """The last ticket on `source`'s merge chain that is another person's: its conversation lives on there."""
    here = source
    while here["merged_into"] in others:
        here = others[here["merged_into"]]
    return here["id"]


def _move_messages(conn: Connection, from_ticket: int, to_ticket: int, moved: list[int]) -> None:
    """Messages (their files and reactions hang on them), their rating and raw mail, onto `to_ticket`."""
    conn.execute(update(messages).where(messages.c.id.in_(moved)).values(ticket_id=to_ticket))
    conn.execute(update(ratings).where(ratings.c.ticket_id == from_ticket, ratings.c.message_id.in_(moved))
                 .values(ticket_id=to_ticket))
    conn.execute(update(raw_mail).where(raw_mail.c.id.in_(
        select(messages.c.raw_mail_id).where(messages.c.id.in_(moved))), raw_mail.c.ticket_id == from_ticket)
                 .values(ticket_id=to_ticket))


def _rejoin(conn: Connection, destination: int, group: list[dict], people: dict, now: datetime) -> None:
    """The requesters and followers of the tickets in `group` on `destination` again, as merging made them.

    Only those still on the ticket being erased: someone taken off since stays off.
    """
    for source in sorted(group, key=lambda s: s["id"] != destination):
        role = "requester" if source["id"] == destination else "follower"
        requester = (source["requester"] or "").lower()   # a ticket may have no address to answer
        if requester in people:
            add_participant(conn, destination, requester, role, people[requester].name, now)
        followers = conn.execute(select(events.c.to_value).where(
            events.c.ticket_id == source["id"], events.c.kind == "follower_added")).scalars()
        for follower in dict.fromkeys(f.lower() for f in followers if f):
            if follower in people and taken_off(conn, source["id"], follower) is None:
                add_participant(conn, destination, follower, "follower", people[follower].name, now)


def erase_traces(conn: Connection, address: str, now: datetime, why: str, erased: Erased) -> None:
    """What is left of `address` (lower case) once their own tickets are erased, in the caller's transaction.

    Their words on other tickets are blanked, not deleted: the messages
    stay so that the conversation around them (agents' answers, events,
    threading by Message-ID) still reads in order. From goes too (NULL, as
    for a mail whose From could not be read): it is their address.
    """
    theirs = conn.execute(select(messages.c.id, messages.c.raw_mail_id).where(
        func.lower(messages.c.from_addr) == address)).all()
    ids = [row.id for row in theirs]
    touched = _tickets_touched_by(conn, address, ids)
    if ids:
        erased.files |= set(conn.execute(select(attachments.c.sha256)
                                         .where(attachments.c.message_id.in_(ids))).scalars())
        erased.attachments += _delete(conn, attachments, attachments.c.message_id.in_(ids))
        erased.messages_blanked += conn.execute(update(messages).where(messages.c.id.in_(ids)).values(
            text=ERASED_TEXT, full_text=ERASED_TEXT, html=None, subject=None, from_addr=None,
            from_name=None)).rowcount
        erased.raw_mail += _tombstone(conn, raw_mail.c.id.in_([r.raw_mail_id for r in theirs if r.raw_mail_id]),
                                      now, why)
    named = _remove_from_recipients(conn, address, erased)
    # The original bytes of a mail that named them (in Cc) name them still:
    # the message keeps its words, the raw copy goes.
    erased.raw_mail += _tombstone(conn, raw_mail.c.id.in_(
        select(messages.c.raw_mail_id).where(messages.c.id.in_(named))), now, why) if named else 0
    erased.participants += _delete(conn, participants, func.lower(participants.c.email) == address)
    erased.reactions += _delete(conn, reactions, func.lower(reactions.c.by_addr) == address)
    erased.outbox += _delete(conn, outbox, func.lower(outbox.c.recipient) == address)
    # A former agent (no longer in rules.yaml, else forget refuses) still
    # stands on the tickets they worked and may be the last one round robin gave a ticket to.
    for column in (tickets.c.assignee, tickets.c.dev_engineer):
        erased.addresses_removed += conn.execute(update(tickets).where(func.lower(column) == address)
                                                 .values({column.name: None})).rowcount
    erased.addresses_removed += conn.execute(update(rr_cursor).where(func.lower(rr_cursor.c.last_agent) == address)
                                             .values(last_agent=None)).rowcount
    erased.addresses_removed += _delete(conn, agent_absences, agent_absences.c.agent == address)
    # History keeps what happened, not who: an event they caused or that names them says "[erased]".
    for column in (events.c.actor, events.c.from_value, events.c.to_value):
        erased.events_anonymised += conn.execute(update(events).where(func.lower(column) == address)
                                                 .values({column.name: ERASED_TEXT})).rowcount
    erased.raw_mail += _tombstone(conn, func.lower(raw_mail.c.envelope_from) == address, now, why)
    erased.raw_mail += _tombstone_loose_mail_from(conn, address, now, why)
    _erase_spelled(conn, address, touched, now, why, erased)


def _tickets_touched_by(conn: Connection, address: str, their_messages: list[int]) -> set[int]:
    """The tickets `address` wrote on, was named on (To, Cc, participant) or acted on: where mail may spell it."""
    spelled = json.dumps(address)[1:-1]
    found = set(conn.execute(select(messages.c.ticket_id).where(or_(
        messages.c.id.in_(their_messages),
        func.lower(messages.c.to_addrs).contains(spelled, autoescape=True),
        func.lower(messages.c.cc_addrs).contains(spelled, autoescape=True)))).scalars())
    found |= set(conn.execute(select(participants.c.ticket_id)
                              .where(func.lower(participants.c.email) == address)).scalars())
    found |= set(conn.execute(select(events.c.ticket_id).where(or_(
        *(func.lower(column) == address for column in (events.c.actor, events.c.from_value, events.c.to_value)))))
        .scalars())
    return found - {None}


def _erase_spelled(conn: Connection, address: str, touched: set[int], now: datetime, why: str,
                   erased: Erased) -> None:
    """Where `address` is spelled inside text rather than stored as one: mail bytes, Message-IDs, reasons.

    A Message-ID may carry it (`<1234.jane@example.org>`, some mailers'
    habit), and with it the history that names that mail and the bytes of
    replies that refer to it; mail we sent on the tickets they took part
    in quotes their words and lists them among whom a reply reaches.
    """
    # Mail we sent: a sent copy keeps its row (when, to whom) without its
    # bytes; mail not yet sent, or failed (which `outbox retry` would send
    # again), goes, as the mail to them does above.
    if touched:
        for row in conn.execute(select(outbox.c.id, outbox.c.state, outbox.c.raw)
                                .where(outbox.c.ticket_id.in_(touched))).all():
            if not names_address(bytes(row.raw), address):
                continue
            if row.state == "sent":
                conn.execute(update(outbox).where(outbox.c.id == row.id).values(raw=b""))
            else:
                _delete(conn, outbox, outbox.c.id == row.id)
            erased.outbox += 1
        # Other people's mail on those tickets that names them in a header
        # (References to their Message-ID) or its text keeps its words in
        # the message; the original bytes go, as for a Cc above.
        held = select(messages.c.raw_mail_id).where(messages.c.ticket_id.in_(touched),
                                                    messages.c.raw_mail_id.is_not(None))
        naming = [row.id for row in conn.execute(select(raw_mail.c.id, raw_mail.c.raw).where(
            raw_mail.c.id.in_(held), raw_mail.c.state.in_(_AT_REST), raw_mail.c.size > 0)).all()
            if names_address(bytes(row.raw), address)]
        erased.raw_mail += _tombstone(conn, raw_mail.c.id.in_(naming), now, why) if naming else 0
    erased.raw_mail += _tombstone(conn, func.lower(raw_mail.c.message_id).contains(address, autoescape=True),
                                  now, why)
    # A Message-ID that spells them becomes `1234.[erased]`, as do the
    # reasons naming that mail: the message keeps its place in the
    # conversation, and a later reply naming the old id no longer threads by it.
    for column, counted in ((messages.c.message_id, "addresses_removed"), (events.c.reason, "events_anonymised")):
        table = column.table
        rows = conn.execute(select(table.c.id, column).where(
            func.lower(column).contains(address, autoescape=True))).all()
        for row_id, value in rows:
            conn.execute(update(table).where(table.c.id == row_id)
                         .values({column.name: _unspelled(value, address)}))
        setattr(erased, counted, getattr(erased, counted) + len(rows))


def _unspelled(text: str, address: str) -> str:
    """`text` with every spelling of `address` (in any case) made ERASED_TEXT."""
    return re.sub(re.escape(address), ERASED_TEXT, text, flags=re.IGNORECASE)


def _remove_from_recipients(conn: Connection, address: str, erased: Erased) -> list[int]:
    """Take `address` out of the To and Cc lists of other people's messages; the ids of those messages."""
    # The lists are JSON as tickets.add_message wrote them (non-ASCII
    # escaped), so that spelling is searched for; a LIKE match is only a
    # candidate, each list is then compared exactly.
    spelled = json.dumps(address)[1:-1]
    found = conn.execute(select(messages.c.id, messages.c.to_addrs, messages.c.cc_addrs).where(or_(
        func.lower(messages.c.to_addrs).contains(spelled, autoescape=True),
        func.lower(messages.c.cc_addrs).contains(spelled, autoescape=True)))).mappings().all()
    changed = []
    for row in found:
        values = {}
        for name in ("to_addrs", "cc_addrs"):
            listed = json.loads(row[name] or "[]")
            kept = [a for a in listed if str(a).lower() != address]
            if len(kept) != len(listed):
                values[name] = json.dumps(kept)
        if values:
            conn.execute(update(messages).where(messages.c.id == row["id"]).values(values))
            erased.addresses_removed += len(values)
            changed.append(row["id"])
    return changed


def _tombstone_loose_mail_from(conn: Connection, address: str, now: datetime, why: str) -> int:
    """Tombstone raw mail From `address` that no message holds: quarantined, waiting, or a like/dislike click."""
    held = select(messages.c.raw_mail_id).where(messages.c.raw_mail_id.is_not(None))
    loose = conn.execute(select(raw_mail.c.id, func.substr(raw_mail.c.raw, 1, HEAD_BYTES, type_=raw_mail.c.raw.type))
                         .where(raw_mail.c.state.in_(_AT_REST), raw_mail.c.size > 0,
                                or_(raw_mail.c.ticket_id.is_(None), raw_mail.c.id.not_in(held)))).all()
    # ingest.identity reads From as the dedupe check does: lower-case addr-specs of the head.
    ids = [raw_id for raw_id, head in loose if address in identity(bytes(head or b"")).senders]
    return _tombstone(conn, raw_mail.c.id.in_(ids), now, why) if ids else 0


# ---------------------------------------------------------------- retention


def closed_tickets_due(conn: Connection, closed_before: datetime, limit: int) -> list[int]:
    """Ids of tickets closed before `closed_before`, oldest first, at most `limit`.

    A merged ticket is left out while its merge leads somewhere: it holds
    nothing but its history, and erasing it would send a reply to its old
    mail to a new ticket instead of the one it was merged into. When that
    one is erased, erase_ticket clears the pointer and it is due again.
    """
    return list(conn.execute(select(tickets.c.id).where(tickets.c.status == "closed",
                                                        tickets.c.closed_at < closed_before,
                                                        tickets.c.merged_into.is_(None))
                             .order_by(tickets.c.id).limit(limit)).scalars())


def _raw_due(processed_before: datetime):
    # Processed mail only: quarantined mail is the evidence of a failure and
    # waiting mail is not processed yet. A row without processed_at (from
    # before the column was set) counts from when it arrived.
    return (raw_mail.c.state == "done", raw_mail.c.size > 0,
            func.coalesce(raw_mail.c.processed_at, raw_mail.c.received_at) < processed_before)


def raw_mail_due(conn: Connection, processed_before: datetime, after_id: int, limit: int) -> list[int]:
    """Ids above `after_id` of processed raw mail that still has its bytes and is due, in id order."""
    return list(conn.execute(select(raw_mail.c.id).where(raw_mail.c.id > after_id, *_raw_due(processed_before))
                             .order_by(raw_mail.c.id).limit(limit)).scalars())


def drop_raw_bytes(conn: Connection, raw_ids: list[int], processed_before: datetime, now: datetime, why: str) -> int:
    """Tombstone these processed raw mails if still due, keeping state `done` and their ticket; how many.

    As an erased row (`_tombstone`) but for state and ticket: `done` with
    its ticket still says what became of the mail, and the dedupe check
    takes any row without bytes for the mail it was.
    """
    if not raw_ids:
        return 0
    return conn.execute(update(raw_mail).where(raw_mail.c.id.in_(raw_ids), *_raw_due(processed_before)).values(
        raw=b"", size=0, envelope_from=None, envelope_to=None, message_id=None,
        reason=f"original bytes dropped {iso(now)} by {why}")).rowcount


# ---------------------------------------------------------------- files


def referenced_files(conn: Connection, sha256s: set[str]) -> set[str]:
    """Which of these attachment files some attachment row still names."""
    if not sha256s:
        return set()
    return set(conn.execute(select(attachments.c.sha256).where(attachments.c.sha256.in_(sorted(sha256s)))
                            .distinct()).scalars())
