"""The rule set admins write in rules.yaml, as frozen data, and routing (pure).

Loading and validating the YAML lives in ticketd/rules_file.py; this module
only knows the shape and how a mail is routed. Patterns are compiled by the
loader with RE2 (linear time, issue 5), so matching customer text cannot hang.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

from ticketd.domain.daily_summary import DailySummary


class Pattern(Protocol):
    pattern: str

    def search(self, text: str): ...


@dataclass(frozen=True)
class Agent:
    email: str
    name: str
    groups: tuple[str, ...] = ()
    away: bool = False
    max_open: int | None = None
    timezone: str | None = None   # where the dates the agent writes and reads are local; None: the desk's


@dataclass(frozen=True)
class Group:
    name: str
    assign: str = "round_robin"   # round_robin | least_open


@dataclass(frozen=True)
class MailFacts:
    """What a route condition can look at."""
    from_addr: str = ""
    to: str = ""
    cc: str = ""
    subject: str = ""
    body: str = ""
    # Lower-case name -> every value of that header, in the mail's order (a lone text: its one value). A name
    # may come many times (Received, a label per X-Label line): a condition matches any of them.
    headers: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    # The ticket's type and priority as a route sees them: what the new ticket
    # would get so far. A ticket without a `Type:` key fact has no type; every
    # ticket has a priority, `normal` unless a route sets another (schema.sql's
    # default), so `if: {priority: normal}` matches a plain mail (PRODUCT.md:
    # conditions match "the ticket's `type` and `priority`").
    type: str = ""
    priority: str = "normal"

    def value(self, name: str) -> str:
        """The field's text; for a header, its first value ("" when the mail has none)."""
        return self.texts(name)[0]

    def texts(self, name: str) -> tuple[str, ...]:
        """The field's text; for a header, each of its values ("" alone when the mail has none)."""
        if name.startswith("header."):
            found = self.headers.get(name[len("header."):].lower())
            if isinstance(found, str):
                return (found,)
            return tuple(text or "" for text in found) if found else ("",)
        return (getattr(self, {"from": "from_addr"}.get(name, name), "") or "",)


@dataclass(frozen=True)
class Condition:
    """One `if:` entry: any of `patterns` found in the field (or, for type and
    priority, the ticket's value is one of `values`)."""
    field: str                    # from | to | cc | subject | body | header.<name> | type | priority
    patterns: tuple[Pattern, ...] = ()
    values: tuple[str, ...] = ()

    def explain(self, facts: MailFacts) -> str | None:
        """Why this condition holds (for `rules test`), or None if it does not."""
        if self.values:
            text = facts.value(self.field)
            return f"{self.field} is {text}" if text in self.values else None
        for pattern in self.patterns:
            for text in facts.texts(self.field):
                found = pattern.search(text)
                if found is not None:
                    return f"{self.field} matches /{pattern.pattern}/ at {found.group(0)[:60]!r}"
        return None


@dataclass(frozen=True)
class Route:
    name: str
    conditions: tuple[Condition, ...] = ()
    group: str | None = None
    assignee: str | None = None
    priority: str | None = None
    type: str | None = None
    tags: tuple[str, ...] = ()
    suppress_ack: bool = False
    close: bool = False          # stored closed at once: no acknowledgement, agent or timers
    requester: str | None = None   # "reply_to": a contact form's mail, the customer is in Reply-To
    continue_: bool = False


@dataclass(frozen=True)
class TimerSpec:
    respond_within: float | None = None   # seconds
    on_breach: str = "reassign"           # reassign | notify
    warn_after: float | None = None
    close_after: float | None = None
    remind_before: float | None = None    # in_development: remind this long before the due date
    business_hours: bool = False          # respond_within counts business hours only


@dataclass(frozen=True)
class BusinessHours:
    """A weekly schedule in one time zone, and the days off."""
    timezone: str = "UTC"
    # weekday (0 = Monday) -> (start, end) in seconds after midnight
    week: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class RouteDecision:
    routes: tuple[str, ...] = ()
    group: str | None = None
    assignee: str | None = None
    priority: str | None = None
    type: str | None = None
    tags: tuple[str, ...] = ()
    suppress_ack: bool = False
    close: bool = False
    requester: str | None = None
    # route name -> why each of its conditions held (for `rules test`)
    reasons: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class RuleSet:
    agents: tuple[Agent, ...] = ()
    groups: Mapping[str, Group] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    timers: Mapping[str, TimerSpec] = field(default_factory=dict)
    business_hours: BusinessHours | None = None
    daily_summary: DailySummary | None = None
    digest: str = hashlib.sha256(b"").hexdigest()
    source: str = ""
    # Located lines for what is valid but leaves mail waiting (ticketd/rules_file.py); not part of the rules.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def agent(self, email: str | None) -> Agent | None:
        email = (email or "").lower()
        return next((a for a in self.agents if a.email == email), None)

    @property
    def timezone(self) -> str:
        """The desk's time zone: the daily summary's, else the business hours', else UTC."""
        if self.daily_summary is not None:
            return self.daily_summary.timezone   # itself the business hours' one unless set
        return self.business_hours.timezone if self.business_hours is not None else "UTC"

    def zone_of(self, email: str | None) -> str:
        """The time zone an address reads and writes dates in: an agent's own, else the desk's."""
        agent = self.agent(email)
        return agent.timezone if agent is not None and agent.timezone else self.timezone

    def members(self, group: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if group in a.groups)

    def timer(self, status: str) -> TimerSpec | None:
        return self.timers.get(status)

    def route(self, facts: MailFacts) -> RouteDecision:
        """First matching route wins, unless it says `continue: true`.

        A later route sees the type and priority earlier routes set, so
        `if: {priority: high}` after a `continue: true` route works.
        """
        decision = RouteDecision()
        for route in self.routes:
            reasons = []
            for condition in route.conditions:
                why = condition.explain(facts)
                if why is None:
                    break
                reasons.append(why)
            else:
                decision = RouteDecision(
                    routes=decision.routes + (route.name,),
                    group=route.group or decision.group,
                    assignee=route.assignee or decision.assignee,
                    priority=route.priority or decision.priority,
                    type=route.type or decision.type,
                    tags=tuple(dict.fromkeys(decision.tags + route.tags)),
                    suppress_ack=decision.suppress_ack or route.suppress_ack,
                    close=decision.close or route.close,
                    requester=route.requester or decision.requester,
                    reasons=decision.reasons + ((route.name, tuple(reasons) or ("no conditions",)),),
                )
                facts = replace(facts, priority=route.priority or facts.priority, type=route.type or facts.type)
                if not route.continue_:
                    break
        return decision
