"""Agents' own absences (`#away` by mail): read, set, end, and the rule set as they make it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, inspect, or_, select

from ticketd.domain.absence import is_absent, with_absences
from ticketd.domain.rules import RuleSet
from ticketd.store.tables import agent_absences

_ABSENT = select(agent_absences.c.agent, agent_absences.c.since, agent_absences.c.until).where(
    or_(agent_absences.c.until.is_(None), agent_absences.c.until > bindparam("now")))
_ONE = select(agent_absences.c.since, agent_absences.c.until).where(agent_absences.c.agent == bindparam("agent"))
_END = delete(agent_absences).where(agent_absences.c.agent == bindparam("agent"))
_SET = insert(agent_absences)


def absent_agents(conn: Connection, now: datetime) -> dict[str, tuple[datetime, datetime | None]]:
    """Every agent away by their own word at `now`: (since, until), until None meaning until #back."""
    return {row.agent: (row.since, row.until) for row in conn.execute(_ABSENT, {"now": now})}


def has_absences_table(conn: Connection) -> bool:
    """Whether the database has agent_absences (schema version 5 on): `rules test` reads an older one as it is."""
    return inspect(conn).has_table(agent_absences.name)


def absence_of(conn: Connection, agent: str, now: datetime) -> tuple[datetime, datetime | None] | None:
    """(since, until) of the agent's absence if it holds at `now`; None if they are not away."""
    row = conn.execute(_ONE, {"agent": agent}).first()
    if row is None or not is_absent(row.until, now):
        return None
    return row.since, row.until


def set_absence(conn: Connection, agent: str, since: datetime, until: datetime | None) -> None:
    """The agent is away from `since` until `until` (None: until they write #back); replaces any earlier one."""
    conn.execute(_END, {"agent": agent})
    conn.execute(_SET, {"agent": agent, "since": since, "until": until})


def end_absence(conn: Connection, agent: str) -> None:
    conn.execute(_END, {"agent": agent})


def rules_now(conn: Connection, rules: RuleSet, now: datetime) -> RuleSet:
    """`rules` with the agents away by their own word marked away (one small query)."""
    absent = absent_agents(conn, now)
    return with_absences(rules, absent) if absent else rules
