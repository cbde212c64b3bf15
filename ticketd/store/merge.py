"""Merge in the database: one ticket's conversation moved onto another, and merged tickets followed to their end."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, select, update

from ticketd.domain.merge import follow_merges, joining, refusal
from ticketd.domain.timers import dates_left_behind
from ticketd.store.driver import Hot
from ticketd.store.tables import (
    attachments,
    messages,
    participants,
    ratings,
    raw_mail,
    reactions,
    ticket_tags,
    tickets,
    timers,
)
from ticketd.store.tickets import add_event, get_ticket, lock_ticket, participants_of, update_ticket
from ticketd.store.timers import cancel_armed

ACTOR = "admin:cli"
WHY = "`ticketd tickets merge`"


class MergeRefused(Exception):
    """The merge may not happen; the message says why, and what to do instead."""


@dataclass
class Merged:
    """What a merge moved onto INTO, counted."""
    source: int
    into: int
    messages: int = 0
    attachments: int = 0     # with their messages
    reactions: int = 0       # with their messages
    ratings: int = 0
    participants: int = 0    # joined INTO
    participants_already_there: int = 0
    tags: int = 0            # new on INTO
    timers_cancelled: int = 0
    assignee: str | None = None   # SOURCE's agent, who INTO went to (it had none)
    reopened_from: str | None = None   # INTO's waiting status, left for open: the customer's words came along

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("source", "into", "assignee", "reopened_from")}

    def summary(self) -> str:
        """`messages 3, participants 1, …`: the counts that are not zero, for history, log and terminal."""
        moved = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in self.counts().items() if n) or "nothing"
        return (moved + (f"; assigned to {self.assignee}, who had [#{self.source}]" if self.assignee else "")
                + (f"; [#{self.into}] goes from {self.reopened_from} to open: the customer's mail came after its last "
                   "public reply" if self.reopened_from else ""))


# Built once, executed with parameters: processing follows merged tickets
# for every mail that names one (see ticketd/store/tickets.py).
_MERGED_INTO = Hot(select(tickets.c.merged_into).where(tickets.c.id == bindparam("ticket_id")))


def _merged_into(conn: Connection, ticket_id: int) -> tuple[bool, int | None]:
    rows = _MERGED_INTO.execute(conn, dict(ticket_id=ticket_id)).rows
    return (bool(rows), rows[0][0] if rows else None)


def final_ticket(conn: Connection, ticket_id: int) -> int | None:
    """The ticket a mail naming `ticket_id` belongs to: itself, or the end of its merged_into chain; None if gone."""
    exists, onward = _merged_into(conn, ticket_id)
    if not exists:
        return None
    return ticket_id if onward is None else follow_merges(ticket_id, lambda t: _merged_into(conn, t)[1])


def lock_final_ticket(conn: Connection, ticket_id: int) -> dict:
    """The row of `final_ticket` of a ticket known to exist, locked; a merge committed since is followed.

    The row is the caller's to change (ticketd.conversation.apply_followup),
    so the ticket is not read and locked a second time.
    """
    # A merge takes the same row locks (PostgreSQL; SQLite's writers take
    # turns): once a ticket is locked here, its merged_into is the last word.
    rows: dict[int, dict] = {}

    def onward(t: int) -> int | None:
        rows[t] = lock_ticket(conn, t) or {}
        return rows[t].get("merged_into")

    return rows[follow_merges(ticket_id, onward)]


def lock_final(conn: Connection, ticket_id: int) -> int:
    """The id of `lock_final_ticket`."""
    return lock_final_ticket(conn, ticket_id)["id"]


def merged_sources(conn: Connection, ticket_id: int) -> list[int]:
    """Every ticket whose merged_into chain ends at `ticket_id`, in id order."""
    found: set[int] = set()
    frontier = [ticket_id]
    while frontier:
        step = conn.execute(select(tickets.c.id).where(tickets.c.merged_into.in_(frontier))).scalars().all()
        frontier = [t for t in step if t not in found and t != ticket_id]
        found.update(frontier)
    return sorted(found)


def merge_tickets(conn: Connection, source_id: int, into_id: int, now: datetime, *, actor: str = ACTOR,
                  by: str = WHY) -> Merged:
    """Move SOURCE's conversation onto INTO and close SOURCE, in the caller's transaction.

    Raises MergeRefused, having changed nothing, when the merge may not happen.
    `actor` and `by` (what asked for it) go into both tickets' history.
    """
    source, into = _lock_pair(conn, source_id, into_id)
    into_end = final_ticket(conn, into_id) if into is not None and into["merged_into"] is not None else None
    why_not = refusal(source_id, into_id, source, into, into_end)
    if why_not is not None:
        raise MergeRefused(why_not)
    merged = Merged(source_id, into_id)

    own = select(messages.c.id).where(messages.c.ticket_id == source_id).scalar_subquery()
    merged.attachments = _count(conn, attachments, attachments.c.message_id.in_(own))
    merged.reactions = _count(conn, reactions, reactions.c.message_id.in_(own))
    # Messages carry their attachments and reactions (both hang on the
    # message); a rating names its message and its ticket, and goes along.
    # Events stay: they are SOURCE's own history, and the ones naming a
    # moved message still name it.
    merged.messages = conn.execute(update(messages).where(messages.c.ticket_id == source_id)
                                   .values(ticket_id=into_id)).rowcount
    merged.ratings = conn.execute(update(ratings).where(ratings.c.ticket_id == source_id)
                                  .values(ticket_id=into_id)).rowcount
    # The raw mail follows the ticket its message is on, so that erasing
    # SOURCE later leaves the original mail of INTO's messages alone.
    conn.execute(update(raw_mail).where(raw_mail.c.ticket_id == source_id).values(ticket_id=into_id))

    into_emails = [p["email"] for p in participants_of(conn, into_id)]
    for person in joining(participants_of(conn, source_id), into_emails):
        if person.role is None:
            # Already on INTO (participants(ticket_id, email) is unique): their role there stands.
            conn.execute(delete(participants).where(participants.c.id == person.participant_id))
            merged.participants_already_there += 1
        else:
            conn.execute(update(participants).where(participants.c.id == person.participant_id)
                         .values(ticket_id=into_id, role=person.role))
            merged.participants += 1

    into_tags = set(conn.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket_id == into_id)).scalars())
    for tag in conn.execute(select(ticket_tags.c.tag).where(ticket_tags.c.ticket_id == source_id)
                            .order_by(ticket_tags.c.tag)).scalars().all():
        if tag not in into_tags:
            conn.execute(ticket_tags.insert().values(ticket_id=into_id, tag=tag))
            merged.tags += 1
    conn.execute(delete(ticket_tags).where(ticket_tags.c.ticket_id == source_id))

    merged.timers_cancelled = _count(conn, timers, timers.c.ticket_id == source_id, timers.c.state == "armed")
    cancel_armed(conn, source_id, now)
    # SOURCE is closed without the closing mail and its rating request:
    # nothing was solved there, and its customer now follows INTO. Its
    # pending outbox rows are left to go out: each is a mail already
    # composed (its Message-ID fixed at insert) about something that
    # happened before the merge, and a reply to one threads onto INTO.
    # Its wake-up or due date goes, as on any way into closed (dates_left_behind); the merged_into
    # event below says which status it left.
    update_ticket(conn, source_id, now, status="closed", merged_into=into_id,
                  closed_at=source["closed_at"] if source["status"] == "closed" else now,
                  **dates_left_behind(source, "closed"))
    # An open INTO nobody has yet goes to the agent who was working SOURCE:
    # the same problem, and they know it (round robin would pick anyone).
    if into["assignee"] is None and source["assignee"] and into["status"] != "closed":
        merged.assignee = source["assignee"]
        update_ticket(conn, into_id, now, assignee=merged.assignee)
        add_event(conn, into_id, now, actor, "assigned", from_value=None, to_value=merged.assignee,
                  reason=f"had [#{source_id}], merged into this one by {by}")
    moved = merged.summary()
    add_event(conn, source_id, now, actor, "merged_into", from_value=source["status"], to_value="closed",
              reason=f"merged into [#{into_id}] by {by}: {moved}; closed without the closing mail to its customer")
    # INTO keeps its status: a closed one is not reopened by a merge.
    update_ticket(conn, into_id, now)
    add_event(conn, into_id, now, actor, "merged", from_value=f"[#{source_id}]", to_value=f"[#{into_id}]",
              reason=f"ticket [#{source_id}] merged into this one by {by}: {moved}")
    return merged


def _lock_pair(conn: Connection, source_id: int, into_id: int) -> tuple[dict | None, dict | None]:
    """SOURCE locked, then INTO when the merge may go on; INTO as read, unlocked, when it is refused anyway.

    Tickets are locked a ticket before the one it is merged into, as
    processing a mail follows a merge (lock_final_ticket) and erasure takes
    merged tickets first (ticketd.store.erase.lock_merged_first); an
    agent's `#merge` holds SOURCE from the start of its mail's processing.
    Any other order meets one of them halfway, and PostgreSQL breaks the
    deadlock by failing a side, possibly a mail's processing. A merged
    SOURCE, or a missing or merged INTO (which a mail locks on its way
    along the merge), is refused without locking INTO.
    """
    source = lock_ticket(conn, source_id)
    if source_id == into_id:
        return source, source
    if source is None or source["merged_into"] is not None:
        return source, get_ticket(conn, into_id)
    into = get_ticket(conn, into_id)
    if into is None or into["merged_into"] is not None:
        return source, into
    return source, lock_ticket(conn, into_id)


def _count(conn: Connection, table, *where) -> int:
    return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
