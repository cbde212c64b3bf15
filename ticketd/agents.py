"""The agents as the desk sees them now (`ticketd agents list`), and an absence an admin sets for one."""

from __future__ import annotations

from datetime import datetime

from ingest.match import desk_address
from ticketd.app import App
from ticketd.clock import iso
from ticketd.domain.assignment import available
from ticketd.domain.absence import with_absences
from ticketd.store import absences
from ticketd.store.assignment import open_counts
from ticketd.store.db import reading


def agents_now(app: App, now: datetime) -> list[dict]:
    """Every agent in rules.yaml, in its order: groups, absences (rules.yaml's and their own), load, desk address."""
    with reading(app.engine) as conn:
        absent = absences.absent_agents(conn, now)
        counts = open_counts(conn, [a.email for a in app.rules.agents])
    rules = with_absences(app.rules, absent)
    listed = []
    for agent, effective in zip(app.rules.agents, rules.agents, strict=True):
        own = absent.get(agent.email)
        listed.append({
            "email": agent.email, "name": agent.name, "groups": list(agent.groups),
            "available": available(effective, counts),
            "away": effective.away, "away_in_rules": agent.away,
            "absence": {"since": iso(own[0]), "until": iso(own[1])} if own else None,
            "open_tickets": counts.get(agent.email, 0), "max_open": agent.max_open,
            "desk_address": desk_address(app.signer, app.settings.support_address, agent.email),
        })
    return listed


def set_away(app: App, email: str, until: datetime | None, now: datetime) -> None:
    """The agent is away from now until `until` (None: until #back or `ticketd agents back`), as their #away does."""
    with app.engine.begin() as conn:
        absences.set_absence(conn, email, now, until)


def set_back(app: App, email: str) -> None:
    with app.engine.begin() as conn:
        absences.end_absence(conn, email)
