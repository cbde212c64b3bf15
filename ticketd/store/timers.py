"""Timer rows: arm, cancel, claim once, move, and the reads a firing or a re-plan after a reload needs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, func, insert, not_, or_, select, update

from ingest.identity import HEAD_BYTES
from ticketd.domain.statuses import Status
from ticketd.domain.timers import SILENCE_KINDS
from ticketd.store.db import insert_if_absent
from ticketd.store.driver import Hot
from ticketd.store.tables import events, messages, raw_mail, tickets, timer_rules, timers


def cancel_armed(conn: Connection, ticket_id: int, now: datetime) -> None:
    """Cancel every armed timer of the ticket."""
    conn.execute(update(timers).where(timers.c.ticket_id == ticket_id, timers.c.state == "armed")
                 .values(state="cancelled", fired_at=now))


def cancel_armed_of_kinds(conn: Connection, ticket_id: int, kinds: Iterable[str], now: datetime) -> None:
    """Cancel the ticket's armed timers of `kinds`, leaving its others armed."""
    conn.execute(update(timers).where(timers.c.ticket_id == ticket_id, timers.c.state == "armed",
                                      timers.c.kind.in_(list(kinds))).values(state="cancelled", fired_at=now))


# Built once, executed with parameters (see ticketd/store/tickets.py):
# processing arms and reads timers for every mail.
_INSERT_TIMER = Hot(insert(timers))
_ARMED_DUE_AT = select(timers.c.due_at).where(
    timers.c.ticket_id == bindparam("ticket_id"), timers.c.state == "armed", timers.c.kind == bindparam("kind"))
_ARMED_OF_KIND = select(timers.c.id, timers.c.created_at, timers.c.due_at).where(
    timers.c.ticket_id == bindparam("ticket_id"), timers.c.state == "armed", timers.c.kind == bindparam("kind")
).order_by(timers.c.due_at, timers.c.id).limit(1)
_CANCEL_TIMER = update(timers).where(timers.c.id == bindparam("timer_id"), timers.c.state == "armed").values(
    state="cancelled", fired_at=bindparam("now"))


def arm_timers(conn: Connection, ticket_id: int, status: str, planned: Iterable[tuple[str, datetime]],
               now: datetime) -> None:
    """Insert one armed timer per (kind, due_at)."""
    _INSERT_TIMER.executemany(conn, [{"ticket_id": ticket_id, "kind": kind, "status": status, "due_at": due_at,
                                      "state": "armed", "created_at": now} for kind, due_at in planned])


def arm_timer(conn: Connection, ticket_id: int, kind: str, status: str, due_at: datetime, now: datetime) -> None:
    """Insert one armed timer."""
    arm_timers(conn, ticket_id, status, [(kind, due_at)], now)


def cancel_timer(conn: Connection, timer_id: int, now: datetime) -> bool:
    """Cancel one timer, if it is still armed; whether it was."""
    return conn.execute(_CANCEL_TIMER, {"timer_id": timer_id, "now": now}).rowcount == 1


def move_timer(conn: Connection, timer_id: int, due_at: datetime) -> bool:
    """Make an armed timer due at `due_at`; False if it was no longer armed (fired or cancelled meanwhile)."""
    return conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.state == "armed")
                        .values(due_at=due_at)).rowcount == 1


def armed(conn: Connection, ticket_id: int) -> list[dict]:
    """The ticket's armed timers, soonest first."""
    rows = conn.execute(select(timers).where(timers.c.ticket_id == ticket_id, timers.c.state == "armed")
                        .order_by(timers.c.due_at)).mappings().all()
    return [dict(r) for r in rows]


def due_armed(conn: Connection, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(timer id, ticket id) of armed timers due by `now`, soonest first."""
    return [(timer_id, ticket_id) for timer_id, ticket_id, _, _ in due_armed_kinds(conn, now, limit)]


# A customer's reply set aside in quarantine since the wait began, that nobody has retried or dismissed,
# holds its ticket's warn and close (ticketd/quarantined_reply.py). Left out here, not skipped by the
# sweep: held timers never fill its `limit` ahead of the others. Asked only of the few due timers, each
# through the raw_mail_ticket index (migration 17): the mail of that ticket alone is looked at.
HELD_BY_QUARANTINE = and_(timers.c.kind.in_(SILENCE_KINDS), select(raw_mail.c.id).where(
    raw_mail.c.state == "quarantined", raw_mail.c.dismissed_at.is_(None), raw_mail.c.ticket_id == timers.c.ticket_id,
    raw_mail.c.received_at >= timers.c.created_at).exists())


def due_armed_kinds(conn: Connection, now: datetime, limit: int) -> list[tuple[int, int, str, datetime]]:
    """(timer id, ticket id, kind, due_at) of armed timers due by `now` and not held, soonest first."""
    return conn.execute(
        select(timers.c.id, timers.c.ticket_id, timers.c.kind, timers.c.due_at)
        .where(timers.c.state == "armed", timers.c.due_at <= now, not_(HELD_BY_QUARANTINE))
        .order_by(timers.c.due_at, timers.c.id).limit(limit)
    ).all()


_QUARANTINED_HEAD = select(func.substr(raw_mail.c.raw, 1, HEAD_BYTES, type_=raw_mail.c.raw.type),
                           raw_mail.c.envelope_to).where(raw_mail.c.id == bindparam("raw_id"))


def quarantined_head(conn: Connection, raw_id: int) -> tuple[bytes, list[str]]:
    """The start of a stored mail's bytes (its head is in it) and its envelope recipients."""
    head, envelope_to = conn.execute(_QUARANTINED_HEAD, {"raw_id": raw_id}).one()
    return bytes(head or b""), [a for a in json.loads(envelope_to or "[]") if a]


def hold_for(conn: Connection, raw_id: int, ticket_id: int) -> None:
    """Name the ticket a quarantined mail answers (raw_mail.ticket_id): while quarantined, it holds its timers.

    The column a processed mail's ticket goes in: a merge moves it, an
    erasure of the ticket takes the mail with it, and a retry that
    processes it writes the ticket it really joined.
    """
    conn.execute(update(raw_mail).where(raw_mail.c.id == raw_id).values(ticket_id=ticket_id))


# Read by the sweep once a round, never per mail: the raw_mail_state index
# (state, id) leaves only the few mails still in line to look at.
_OLDEST_IN_LINE = select(func.min(raw_mail.c.received_at)).where(raw_mail.c.state == "received")


def oldest_mail_in_line(conn: Connection) -> datetime | None:
    """When the oldest mail taken in (SMTP's 250, read from IMAP) and not yet processed came; None if none waits."""
    return conn.execute(_OLDEST_IN_LINE).scalar_one()


def claim_timer(conn: Connection, timer_id: int, now: datetime) -> dict | None:
    """Mark an armed timer due by `now` fired (one conditional UPDATE); the row, or None if it was not.

    Due by `now` as well as armed: a reload may have moved it later since
    the sweep read it as due (ticketd/timer_replan.py).
    """
    claimed = conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.state == "armed",
                                                timers.c.due_at <= now)
                           .values(state="fired", fired_at=now))
    if claimed.rowcount != 1:
        return None
    return dict(conn.execute(select(timers).where(timers.c.id == timer_id)).mappings().one())


def armed_due_at(conn: Connection, ticket_id: int, kind: str) -> datetime | None:
    """When the ticket's armed timer of `kind` is due, if there is one."""
    return conn.execute(_ARMED_DUE_AT, {"ticket_id": ticket_id, "kind": kind}).scalar_one_or_none()


def armed_of_kind(conn: Connection, ticket_id: int, kind: str) -> dict | None:
    """The ticket's armed timer of `kind` (id, created_at, due_at), soonest first, if there is one."""
    row = conn.execute(_ARMED_OF_KIND, {"ticket_id": ticket_id, "kind": kind}).mappings().first()
    return dict(row) if row is not None else None


# PRODUCT.md's respond-within is about the customer: only a public agent
# reply, the one relayed to them, answers. An internal #note, a commands-only
# mail, a rejected mail and an agent's out-of-office are all stored internal.
_AGENT_REPLIED_SINCE = select(messages.c.id).where(
    messages.c.ticket_id == bindparam("ticket_id"), messages.c.author_role == "agent",
    messages.c.internal.is_(False), messages.c.created_at >= bindparam("since")).limit(1)


def agent_replied_since(conn: Connection, ticket_id: int, since: datetime) -> bool:
    """Whether an agent sent the customer a public reply on the ticket at or after `since`."""
    return conn.execute(_AGENT_REPLIED_SINCE, {"ticket_id": ticket_id, "since": since}).first() is not None


# armed_of_kind and agent_replied_since since the timer was armed, in one round trip: a customer's reply
# asks both of its respond clock (ticketd/timers.py start_response_clock; 0.3 ms a statement on PostgreSQL,
# bench/README.md).
_ANSWERED_SINCE_ARMED = select(messages.c.id).where(
    messages.c.ticket_id == timers.c.ticket_id, messages.c.author_role == "agent",
    messages.c.internal.is_(False), messages.c.created_at >= timers.c.created_at).exists()
_ARMED_OF_KIND_ANSWERED = Hot(select(timers.c.id, timers.c.created_at, timers.c.due_at,
                                     _ANSWERED_SINCE_ARMED.label("answered")).where(
    timers.c.ticket_id == bindparam("ticket_id"), timers.c.state == "armed", timers.c.kind == bindparam("kind")
).order_by(timers.c.due_at, timers.c.id).limit(1))


def armed_of_kind_answered(conn: Connection, ticket_id: int, kind: str) -> dict | None:
    """armed_of_kind, with `answered`: whether agent_replied_since the timer's created_at."""
    row = _ARMED_OF_KIND_ANSWERED.execute(conn, {"ticket_id": ticket_id, "kind": kind}).first()
    return dict(row, answered=bool(row["answered"])) if row is not None else None


# ---------------------------------------------------------------- re-planning after a reload

def tickets_in(conn: Connection, statuses: Iterable[str]) -> list[int]:
    """The ids of the tickets in `statuses`, in order."""
    return list(conn.execute(select(tickets.c.id).where(tickets.c.status.in_(list(statuses)))
                             .order_by(tickets.c.id)).scalars())


def lock_tickets(conn: Connection, ids: Iterable[int], statuses: Iterable[str]) -> list[dict]:
    """Those of the tickets `ids` still in `statuses` (id, status, dev_due, postponed_until), in id order.

    Locked for the transaction on PostgreSQL, in id order (SQLite's write
    transaction holds the file): the ticket first, then its timers, as a
    firing and a status change take them.
    """
    stmt = (select(tickets.c.id, tickets.c.status, tickets.c.dev_due, tickets.c.postponed_until)
            .where(tickets.c.id.in_(list(ids)), tickets.c.status.in_(list(statuses))).order_by(tickets.c.id))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return [dict(r) for r in conn.execute(stmt).mappings()]


# A status change records the status it came from (ticketd/ticket_changes.py,
# as agent_mail's `_status_event` reads it); the ticket's creation has none.
_MOVED_INTO_STATUS = or_(events.c.kind == "created", events.c.from_value.in_([s.value for s in Status]))


def entered_status(conn: Connection, ids: Iterable[int]) -> dict[int, datetime]:
    """When each of the tickets `ids` entered the status it is in: its latest event that moved it there.

    A ticket without such an event (made outside the mail flow) is left out.
    """
    rows = conn.execute(
        select(events.c.ticket_id, func.max(events.c.at)).join(tickets, tickets.c.id == events.c.ticket_id)
        .where(events.c.ticket_id.in_(list(ids)), events.c.to_value == tickets.c.status, _MOVED_INTO_STATUS)
        .group_by(events.c.ticket_id)).all()
    return dict(rows)


def timers_of_current_status(conn: Connection, ids: Iterable[int]) -> list[dict]:
    """The armed and fired timers of the tickets `ids` that belong to the status each ticket is in."""
    rows = conn.execute(
        select(timers).join(tickets, tickets.c.id == timers.c.ticket_id)
        .where(timers.c.ticket_id.in_(list(ids)), timers.c.status == tickets.c.status, timers.c.state != "cancelled")
        .order_by(timers.c.ticket_id, timers.c.id)).mappings().all()
    return [dict(r) for r in rows]


# The one row of timer_rules.
_PLANNED_UNDER = 1


def planned_under(conn: Connection) -> tuple[str, str] | None:
    """(sha256, timing JSON) of the rules the armed timers were last planned under; None if none is recorded."""
    row = conn.execute(select(timer_rules.c.rules_hash, timer_rules.c.timing)
                       .where(timer_rules.c.id == _PLANNED_UNDER)).first()
    return (row.rules_hash, row.timing) if row is not None else None


def record_planned_under(conn: Connection, rules_hash: str, timing: str, now: datetime) -> None:
    """Record that the armed timers now follow the rules `rules_hash`, whose timers `timing` gives."""
    values = {"rules_hash": rules_hash, "timing": timing, "planned_at": now}
    change = update(timer_rules).where(timer_rules.c.id == _PLANNED_UNDER).values(**values)
    if conn.execute(change).rowcount == 0 and not insert_if_absent(conn, timer_rules, {"id": _PLANNED_UNDER,
                                                                                     **values}, ["id"]):
        conn.execute(change)   # another process recorded its first rules meanwhile: these are the newer
