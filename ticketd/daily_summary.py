"""Queue each agent's daily summary once its time has come (a sweep step; rules.yaml `daily_summary`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ingest.match import reply_address
from outbound.outbox import queue_notices
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.domain.daily_summary import Entry, latest_slot, ordered
from ticketd.domain.notices import AUTO_GENERATED, Notice
from ticketd.domain.rules import Agent
from ticketd.store import daily_summary as rows
from ticketd.store.absences import rules_now
from ticketd.store.db import reading

log = logging.getLogger("ticketd.daily_summary")

UNASSIGNED_SHOWN = 20   # per group; the rest are counted

# Per process and database: the slot whose summaries are all queued, so
# that the sweep (every few seconds) asks the database once per day.
_done: dict[str, datetime] = {}


def _local(when: datetime | None, zone: ZoneInfo) -> str | None:
    """A stored (naive UTC) time as the desk's clock shows it, to the minute."""
    return when.replace(tzinfo=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M") if when else None


def _line(app: App, agent: Agent, entry: Entry, zone: ZoneInfo, *, take: bool = False) -> dict:
    """What a template shows of one ticket, with the agent's own signed address to act on it."""
    ticket = entry.ticket
    return {
        "id": ticket["id"], "tag": f"[#{ticket['id']}]", "subject": ticket["subject"], "status": ticket["status"],
        "priority": ticket["priority"], "requester": ticket["requester"], "group": ticket["group_name"],
        "updated_at": _local(ticket["updated_at"], zone), "created_at": _local(ticket["created_at"], zone),
        "due_at": _local(entry.due_at, zone), "overdue": entry.overdue,
        # Mail to this address from the agent is the agent's mail on that
        # ticket (PRODUCT.md "Agents by email"), as a reply to a notice is.
        "address": reply_address(app.signer, app.settings.support_address, ticket["id"], agent.email),
        "take": f"#assign {agent.email}" if take else None,
    }


def _notices(app: App, agents: list[Agent], now: datetime) -> list[Notice]:
    with reading(app.engine) as conn:
        return summary_notices(conn, app, agents, now)


def summary_notices(conn, app: App, agents: list[Agent], now: datetime, *,
                    even_empty: bool = False) -> list[Notice]:
    """Each agent's summary as of `now`, its times in the agent's zone; one with nothing to list gets none
    unless `even_empty` (asked for)."""
    mine = rows.open_tickets_of(conn, [a.email for a in agents])
    groups = {g for a in agents for g in a.groups}
    waiting, totals = rows.unassigned_in(conn, groups, UNASSIGNED_SHOWN)
    due = rows.next_timers(conn, [t["id"] for ts in mine.values() for t in ts])
    notices = []
    for agent in agents:
        zone = ZoneInfo(app.rules.zone_of(agent.email))
        entries = ordered(mine.get(agent.email, []), due, now)
        unassigned = [_line(app, agent, Entry(t, None, False), zone, take=True)
                      for g in agent.groups for t in waiting.get(g, [])]
        unassigned_total = sum(totals.get(g, 0) for g in agent.groups)
        if not entries and not unassigned_total and not even_empty:
            continue   # nothing to tell: no mail
        notices.append(Notice(
            template=rows.TEMPLATE, recipient=agent.email, ticket_id=None, auto_submitted=AUTO_GENERATED,
            agent_reply_to=agent.email,
            context={"agent_name": agent.name, "tickets": [_line(app, agent, e, zone) for e in entries],
                     "overdue": sum(e.overdue for e in entries), "unassigned": unassigned,
                     "unassigned_total": unassigned_total, "timezone": zone.key,
                     "date": now.replace(tzinfo=UTC).astimezone(zone).date().isoformat()},
        ))
    return notices


def send_daily_summaries(app: App, now: datetime | None = None) -> list[str]:
    """Queue the summary of every available agent who has not had today's; the agents it went to."""
    spec = app.rules.daily_summary
    now = now or utcnow()
    slot = latest_slot(spec, now) if spec is not None else None
    key = app.settings.database_url
    if slot is None or _done.get(key) == slot:
        return []
    with reading(app.engine) as conn:
        present = [a for a in rules_now(conn, app.rules, now).agents if not a.away]
        had = rows.summarised_since(conn, [a.email for a in present], slot)
    agents = [a for a in present if a.email not in had]
    queued: list[int] = []
    to_send: list[Notice] = []
    if agents and (notices := _notices(app, agents, now)):
        with app.engine.begin() as conn:
            # Looked at again under the lock: another process's sweep may have queued some meanwhile.
            rows.lock_summaries(conn)
            had = rows.summarised_since(conn, [n.recipient for n in notices], slot)
            to_send = [n for n in notices if n.recipient not in had]
            queued = queue_notices(conn, app, to_send, now)
    _done[key] = slot
    for outbox_id in queued:
        app.enqueue("send_mail", (outbox_id,))
    if to_send:
        log.info("daily summary queued for %s", ", ".join(n.recipient for n in to_send))
    return [n.recipient for n in to_send]
