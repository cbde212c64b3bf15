"""The daily summary an agent gets of their open tickets: when it is due, and what it lists in which order (pure).

Without a web page to look at, an agent's queue is only as visible as the
mails they kept: a ticket whose notice scrolled away is forgotten. Once a
day (rules.yaml `daily_summary`) each agent gets the list of what is
theirs, with a link per ticket that writes to it as them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ticketd.domain.statuses import Status


@dataclass(frozen=True)
class DailySummary:
    at: int                    # seconds after local midnight
    timezone: str = "UTC"
    days: frozenset[int] = frozenset(range(7))   # 0 = Monday

    def describe(self) -> str:
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        days = "every day" if len(self.days) == 7 else ",".join(names[d] for d in sorted(self.days))
        return f"daily summary at {self.at // 3600:02d}:{self.at % 3600 // 60:02d} {self.timezone}, {days}"


def latest_slot(spec: DailySummary, now: datetime) -> datetime | None:
    """Today's summary time (naive UTC) once it has passed, on a day the summary goes out; else None.

    Only today's: a daemon that was down at the time sends it when it comes
    back the same day, never yesterday's list a day late.
    """
    zone = ZoneInfo(spec.timezone)
    local_now = now.replace(tzinfo=UTC).astimezone(zone)
    if local_now.weekday() not in spec.days:
        return None
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    # Wall-clock time on that date, resolved in the zone (fold=0 on a DST change).
    slot = (midnight + timedelta(seconds=spec.at)).replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    return slot if slot <= now else None


# Which tickets come first: what is late, then what waits for the agent,
# then what waits for someone else; within each, the longest untouched.
_WAITING_ON_OTHERS = {Status.WAITING_CUSTOMER.value, Status.POSTPONED.value, Status.IN_DEVELOPMENT.value,
                      Status.SOLUTION_PROPOSED.value}
_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


@dataclass(frozen=True)
class Entry:
    """One ticket in a summary."""
    ticket: Mapping
    due_at: datetime | None      # the next armed timer, if any
    overdue: bool


def ordered(tickets: Iterable[Mapping], due: Mapping[int, datetime], now: datetime) -> list[Entry]:
    """The tickets as the summary lists them: overdue first, then the agent's turn, then the rest."""
    entries = [Entry(t, due.get(t["id"]), due.get(t["id"]) is not None and due[t["id"]] <= now) for t in tickets]

    def rank(entry: Entry) -> tuple:
        t = entry.ticket
        return (not entry.overdue, t["status"] in _WAITING_ON_OTHERS, _PRIORITY_RANK.get(t["priority"], 2),
                t["updated_at"], t["id"])

    return sorted(entries, key=rank)
