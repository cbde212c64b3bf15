"""Route again the open tickets whose group the rules no longer have, at start and after each reload.

A group renamed or removed in rules.yaml left its open tickets in a group
nobody takes: unassigned ones waited for ever, and a breach could not
reassign an assigned one. Each such ticket is routed by the rules in force
as if its first mail came now (ticketd.domain.regroup) and takes the group
the routes give, or none; its assignee and priority stay. The unassigned
sweep then gives the waiting ones out in their new groups.

Shape, as ticketd.assignment.release_departed: read the first mail's facts
outside any write transaction (re-parsing a raw mail is no database work),
then one transaction per ticket that checks the ticket still carries the
lost group and writes the group and its event.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ingest.parse import parse_mail
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.domain.regroup import Regroup, moves_summary, regroup
from ticketd.domain.rules import MailFacts
from ticketd.domain.statuses import Status
from ticketd.prepare import as_written
from ticketd.store import tickets as store
from ticketd.store.assignment import open_tickets_of_other_groups
from ticketd.store.db import reading

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("ticketd.rules")

ACTOR = "system:rules"


def regroup_stranded(app: App, batch: int = 100) -> list[tuple[str, str | None]]:
    """Give the open tickets of groups the rules no longer have the group their routes give now.

    Returns each move (former group, new group or None); logs one line
    summing them up, at WARNING when any ticket is left with no group.
    """
    moves: list[tuple[str, str | None]] = []
    while True:
        with reading(app.engine) as conn:
            rows = open_tickets_of_other_groups(conn, app.rules.groups, batch)
            planned = [(ticket_id, regroup(app.rules, former, first_mail_facts(conn, app, ticket_id)))
                       for ticket_id, former in rows]
        done = [move for ticket_id, move in planned if _move(app, ticket_id, move)]
        moves += [(move.former, move.group) for move in done]
        if len(rows) < batch or not done:
            break
    if moves:
        lost = sorted({former for former, _ in moves})
        stranded = sum(group is None for _, group in moves)
        line = (f"rules {app.rules.digest[:12]} no longer have group(s) {', '.join(lost)}: "
                f"{len(moves)} open ticket(s) routed again ({moves_summary(moves)})")
        if stranded:
            log.warning("%s; %d with no group wait for `ticketd tickets assign ID GROUP-or-AGENT`", line, stranded)
        else:
            log.info("%s", line)
    return moves


def _move(app: App, ticket_id: int, move: Regroup) -> bool:
    """Write the ticket's new group and its event; False if it is closed or left that group meanwhile."""
    with app.engine.begin() as conn:
        ticket = store.lock_ticket(conn, ticket_id)
        if ticket is None or ticket["status"] == Status.CLOSED.value or ticket["group_name"] != move.former:
            return False
        now = utcnow()
        store.update_ticket(conn, ticket_id, now, group_name=move.group)
        store.add_event(conn, ticket_id, now, ACTOR, "group", from_value=move.former, to_value=move.group,
                        reason=move.reason(), rules_hash=app.rules.digest)
    log.info("ticket %s: group %s is no longer in rules.yaml; %s", ticket_id, move.former,
             f"now in {move.group} (routes: {', '.join(move.routes)})" if move.group else "now in no group")
    return True


def first_mail_facts(conn: Connection, app: App, ticket_id: int) -> MailFacts:
    """What a route sees of the ticket's first mail, with the ticket's own type and priority.

    The raw mail, parsed again, gives every header a condition may name;
    without it (erased, or past retention) the stored message gives From,
    To, Cc, subject and body, and no headers.
    """
    ticket = store.get_ticket(conn, ticket_id)
    row_id = store.first_message_id(conn, ticket_id)
    row = store.get_message(conn, row_id) if row_id is not None else None
    own = dict(type=ticket["type"] or "", priority=ticket["priority"] or "normal")
    raw = store.raw_bytes(conn, row["raw_mail_id"]) if row is not None else None
    if raw is not None:
        try:
            p = parse_mail(raw, max_depth=app.settings.max_mime_depth, max_parts=app.settings.max_mime_parts)
            p, _ = as_written(app.settings, p)   # its writer, as the first routing saw them
        except Exception:   # noqa: BLE001 -- parsed once already; whatever fails now, the stored message says enough
            log.warning("ticket %s: its first mail could not be parsed again; routed by the stored message",
                        ticket_id, exc_info=True)
        else:
            return MailFacts(from_addr=p.author or "", to=", ".join(p.to), cc=", ".join(p.cc), subject=p.subject,
                             body=p.text, headers=p.header_values, **own)
    if row is None:
        return MailFacts(subject=ticket["subject"], **own)
    return MailFacts(from_addr=row["from_addr"] or "", to=", ".join(json.loads(row["to_addrs"] or "[]")),
                     cc=", ".join(json.loads(row["cc_addrs"] or "[]")), subject=row["subject"] or ticket["subject"],
                     body=row["full_text"] or "", **own)
