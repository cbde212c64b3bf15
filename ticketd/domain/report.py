"""The desk's figures over a window: volume, response and resolution times, breaches, ratings, per agent (pure)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# Events that count as a timer breach or a reopened ticket (ticketd.timers,
# ticketd.customer_mail).
BREACH_KINDS = ("timer_breached",)
REOPEN_KINDS = ("reopened", "rejected")
NOBODY = "(unassigned)"


@dataclass(frozen=True)
class TicketTimes:
    """What the report needs of one ticket."""
    id: int
    assignee: str | None
    created_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class Rating:
    assignee: str | None    # of the rated ticket, now
    usefulness: int
    speed: int
    politeness: int


@dataclass(frozen=True)
class Reaction:
    agent: str | None       # who wrote the reply that was liked or disliked
    reaction: str           # like | dislike


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.5: the median); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def durations(seconds: Sequence[float]) -> dict:
    """Count, median and 90th percentile of durations in seconds."""
    median, p90 = percentile(seconds, 0.5), percentile(seconds, 0.9)
    return {"count": len(seconds), "median_seconds": None if median is None else round(median),
            "p90_seconds": None if p90 is None else round(p90)}


def _mean(values: Iterable[int]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 2) if values else None


def _ratings(rows: Sequence[Rating]) -> dict:
    return {"count": len(rows), "usefulness": _mean(r.usefulness for r in rows),
            "speed": _mean(r.speed for r in rows), "politeness": _mean(r.politeness for r in rows)}


def _reactions(rows: Sequence[Reaction]) -> dict:
    counted = Counter(r.reaction for r in rows)
    return {"like": counted.get("like", 0), "dislike": counted.get("dislike", 0)}


def build_report(since: datetime, now: datetime, *, created: Sequence[TicketTimes], closed: Sequence[TicketTimes],
                 open_by_assignee: dict[str | None, int], event_kinds: dict[str, int], ratings: Sequence[Rating],
                 reactions: Sequence[Reaction], agents: Sequence[str]) -> dict:
    """The report of the window [since, now] from the rows the store read for it.

    First response counts over the tickets created in the window (those not
    answered yet are counted apart, so a slow week does not look fast);
    resolution over the tickets closed in it. Per agent: by the ticket's
    assignee now, so a reassigned ticket counts for whoever has it.
    """
    def first_response(t: TicketTimes) -> float:
        return (t.first_response_at - t.created_at).total_seconds()

    def resolution(t: TicketTimes) -> float:
        return (t.closed_at - t.created_at).total_seconds()

    answered = [t for t in created if t.first_response_at is not None]
    per_agent: dict[str, dict] = {}
    by_created, by_closed = defaultdict(list), defaultdict(list)
    for t in answered:
        by_created[t.assignee or NOBODY].append(first_response(t))
    for t in closed:
        by_closed[t.assignee or NOBODY].append(resolution(t))
    rated, reacted = defaultdict(list), defaultdict(list)
    for r in ratings:
        rated[r.assignee or NOBODY].append(r)
    for r in reactions:
        reacted[r.agent or NOBODY].append(r)
    names = list(dict.fromkeys([*agents, *(a or NOBODY for a in open_by_assignee), *by_created, *by_closed,
                                *rated, *reacted]))
    for name in names:
        per_agent[name] = {
            "open_now": open_by_assignee.get(None if name == NOBODY else name, 0),
            "closed": len(by_closed.get(name, [])),
            "first_response": durations(by_created.get(name, [])),
            "resolution": durations(by_closed.get(name, [])),
            "ratings": _ratings(rated.get(name, [])),
            "reactions": _reactions(reacted.get(name, [])),
        }
    return {
        "since": since, "until": now,
        "tickets": {"created": len(created), "closed": len(closed),
                    "open_now": sum(open_by_assignee.values()),
                    "unassigned_now": open_by_assignee.get(None, 0),
                    "reopened": sum(event_kinds.get(k, 0) for k in REOPEN_KINDS),
                    "timer_breaches": sum(event_kinds.get(k, 0) for k in BREACH_KINDS)},
        "first_response": {**durations([first_response(t) for t in answered]),
                           "not_answered_yet": len(created) - len(answered)},
        "resolution": durations([resolution(t) for t in closed]),
        "ratings": _ratings(ratings),
        "reactions": _reactions(reactions),
        "agents": per_agent,
    }


def human_duration(seconds: float | None) -> str:
    """`-`, `39s`, `1m 40s`, `3h 20m`, `2d 4h`: for the text view, the two largest units, the rest cut off.

    Below a minute in seconds: a first reply after 39 s is no `0m`, which reads as an instant answer.
    """
    if seconds is None:
        return "-"
    whole = int(max(seconds, 0))
    if whole < 60:
        return f"{whole}s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
