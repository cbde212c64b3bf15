"""What new rules.yaml timers do to one ticket's timers: which move, which are cancelled, which are armed (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime

from ticketd.domain import timers as timer_plan
from ticketd.domain.rules import BusinessHours, RuleSet, TimerSpec
from ticketd.domain.statuses import Status
from ticketd.domain.timers import CLOSE, DUE, RESPOND, WARN, with_defaults

# The in_development reminder `remind_before` ahead of the due date: a `due`
# row like the one on the day itself, told apart by its time.
REMIND = "remind"
# What rules.yaml decides, and so what a reload re-plans. A wake-up and the
# due date itself are the ticket's (`#postpone`, `#dev`): a reload leaves them.
REPLANNED = (RESPOND, WARN, CLOSE, REMIND)


@dataclass(frozen=True)
class TimerRow:
    """One timer of the ticket in its status, armed or already fired, as ticketd/timers.py arms it."""
    id: int
    kind: str
    state: str                  # armed | fired
    due_at: datetime
    created_at: datetime        # when its count started: the status change, the customer's mail, ...
    fired_at: datetime | None = None


@dataclass(frozen=True)
class NewTimer:
    kind: str                   # as stored: respond | warn | close | due
    due_at: datetime
    start: datetime             # stored as its created_at: it fires and re-plans as if armed then
    what: str                   # as the ticket's history reads it
    start_is: str = ""          # what `start` is, for the history: "when the ticket entered open", ...


@dataclass(frozen=True)
class Replan:
    """One ticket's changes, each with the timer as the ticket's history reads it."""
    moved: tuple[tuple[TimerRow, datetime, str, datetime], ...] = ()   # (row, due, what, counted from)
    cancelled: tuple[tuple[TimerRow, str], ...] = ()
    armed: tuple[NewTimer, ...] = ()


@dataclass(frozen=True)
class Timing:
    """What plans one status's timers: its rules.yaml entry and the business hours it may count in."""
    spec: TimerSpec | None
    hours: BusinessHours | None

    @classmethod
    def of(cls, rules: RuleSet, status: str) -> Timing:
        return cls(rules.timer(status), rules.business_hours)


def _due_times(status: str, spec: TimerSpec | None) -> tuple:
    """What of a status's entry decides when its timers fall due (on_breach only decides what they do)."""
    spec = with_defaults(status, spec)
    if spec is None:
        return ()
    return spec.respond_within, spec.business_hours, spec.warn_after, spec.close_after, spec.remind_before


def _in_business_hours(status: str, spec: TimerSpec | None) -> bool:
    spec = with_defaults(status, spec)
    return spec is not None and bool(spec.respond_within) and spec.business_hours


def statuses_retimed(before: RuleSet, after: RuleSet) -> tuple[str, ...]:
    """The statuses whose timers fall due at other times under `after` than under `before`."""
    changed = []
    for status in (s.value for s in Status if s != Status.CLOSED):
        old, new = before.timer(status), after.timer(status)
        hours_matter = _in_business_hours(status, old) or _in_business_hours(status, new)
        if _due_times(status, old) != _due_times(status, new) or (
                hours_matter and before.business_hours != after.business_hours):
            changed.append(status)
    return tuple(changed)


def timing_json(rules: RuleSet) -> str:
    """What of `rules` decides when timers fall due (`timers:`, `business_hours:`), as JSON a database keeps."""
    hours = rules.business_hours
    return json.dumps({
        "timers": {status: asdict(spec) for status, spec in rules.timers.items()},
        "business_hours": None if hours is None else {
            "timezone": hours.timezone,
            "week": {str(day): [list(span) for span in spans] for day, spans in hours.week.items()},
            "holidays": sorted(day.isoformat() for day in hours.holidays)},
    }, sort_keys=True)


def rules_of_timing(timing: str, digest: str) -> RuleSet:
    """The rules `timing_json` wrote (sha256 `digest`), as far as a re-plan compares them: timers, business hours."""
    data = json.loads(timing)
    hours = data["business_hours"]
    return RuleSet(
        timers={status: TimerSpec(**spec) for status, spec in data["timers"].items()},
        business_hours=None if hours is None else BusinessHours(
            timezone=hours["timezone"],
            week={int(day): tuple((start, end) for start, end in spans) for day, spans in hours["week"].items()},
            holidays=frozenset(date.fromisoformat(day) for day in hours["holidays"])),
        digest=digest)


def adds_respond_clock(status: str, before: RuleSet, after: RuleSet) -> bool:
    """Whether `after` gives `status` a respond_within that `before` did not."""
    def has(rules: RuleSet) -> bool:
        spec = with_defaults(status, rules.timer(status))
        return spec is not None and bool(spec.respond_within)
    return has(after) and not has(before)


def waiting_since(latest: Iterable[Mapping]) -> datetime | None:
    """When the customer's mail that waits for an answer came, in messages newest first; None if none waits.

    The oldest of the customer's public mails since the last public answer,
    as a respond clock keeps the deadline of the oldest unanswered one
    (docs/rules.md); notes and auto-replies say nothing either way.
    """
    latest = list(latest)
    if not timer_plan.customer_waits(latest):
        return None
    since = None
    for message in latest:
        if message["internal"] or message["auto_generated"]:
            continue
        if message["author_role"] != "customer":
            break
        since = message["created_at"]
    return since


def _key(kind: str, due_at: datetime, dev_due: datetime | None) -> str:
    """A timer's kind, with the reminder before the due date told apart from the one on it."""
    if kind == DUE and dev_due is not None and due_at < dev_due:
        return REMIND
    return kind


def _describe(key: str, status: str, spec: TimerSpec | None) -> str:
    if key == REMIND:
        return f"the reminder before the due date in {status}"
    return timer_plan.describe(key, status, spec)


class _Planner:
    """The rules' timers (REPLANNED) of one ticket in `status` under one Timing, as ticketd/timers.py arms them."""

    def __init__(self, status: str, timing: Timing, dev_due: datetime | None, postponed_until: datetime | None):
        self.status, self.timing, self.dev_due, self.postponed_until = status, timing, dev_due, postponed_until

    def planned(self, start: datetime) -> dict[str, datetime]:
        """Each timer of a count started at `start`, by key."""
        planned = timer_plan.plan(self.status, self.timing.spec, start, postponed_until=self.postponed_until,
                                  dev_due=self.dev_due, business_hours=self.timing.hours)
        return {key: p.due_at for p in planned if (key := _key(p.kind, p.due_at, self.dev_due)) in REPLANNED}

    def close(self, start: datetime, warning: TimerRow | None) -> datetime | None:
        """The close of a wait started at `start`, whose warning (if it went out) still gives its whole grace."""
        due = self.planned(start).get(CLOSE)
        grace = timer_plan.grace_after_warning(self.status, self.timing.spec)
        if due is None or warning is None or warning.fired_at is None or grace is None:
            return due
        return timer_plan.close_after_late_warning(warning.fired_at, due, grace) or due


def _warning_sent(close: TimerRow, stay: list[TimerRow]) -> TimerRow | None:
    """The warning that went out before `close`: armed with it, or the late one that armed it again."""
    return next((r for r in stay if r.kind == WARN and r.state == "fired"
                 and close.created_at in (r.created_at, r.fired_at)), None)


def _count_start(row: TimerRow, key: str, stay: list[TimerRow]) -> datetime:
    """When an armed timer's count started: a close re-armed by a late warning counts from the wait's start."""
    warning = _warning_sent(row, stay) if key == CLOSE else None
    return warning.created_at if warning is not None else row.created_at


def _due_again(row: TimerRow, key: str, stay: list[TimerRow], after: _Planner) -> datetime | None:
    """When an armed timer falls due under `after`, counted from when its count started; None: no longer."""
    if key != CLOSE:
        return after.planned(row.created_at).get(key)
    warning = _warning_sent(row, stay)
    due = after.close(_count_start(row, key, stay), warning)
    if due is not None and warning is not None:
        # PRODUCT.md waiting_customer: the warning told the customer when it
        # closes; new rules may give them longer, never less than that.
        due = max(due, row.due_at)
    return due


def replan(status: str, rows: Iterable[TimerRow], before: Timing, after: Timing, *, entered: datetime | None,
           now: datetime, dev_due: datetime | None = None, postponed_until: datetime | None = None,
           customer_waiting_since: datetime | None = None) -> Replan:
    """How a ticket in `status` since `entered` (None: not known) goes from `before`'s timers to `after`'s.

    `rows` are its timers of `status`, armed or fired. An armed one is
    planned again under `after` from when its count started: due at another
    time, it moves (a time already past fires at the next sweep); no longer
    planned, it is cancelled. One that `after` plans and `before` did not is
    armed, counted from when the ticket entered the status (from `now` if
    that is not known), unless this stay has one already, armed or fired
    (another process re-planned the same change). A respond clock is armed
    only while the customer waits for an answer (`customer_waiting_since`,
    their oldest unanswered mail), counted from that mail if it came later.
    """
    rows = list(rows)
    stay = [r for r in rows if entered is None or r.created_at >= entered]
    old = _Planner(status, before, dev_due, postponed_until)
    new = _Planner(status, after, dev_due, postponed_until)
    moved, cancelled, armed = [], [], []
    for row in rows:
        key = _key(row.kind, row.due_at, dev_due)
        if row.state != "armed" or key not in REPLANNED:
            continue
        due = _due_again(row, key, stay, new)
        if due is None:
            cancelled.append((row, _describe(key, status, before.spec)))
        elif due != row.due_at:
            moved.append((row, due, _describe(key, status, after.spec), _count_start(row, key, stay)))
    start = entered or now
    had = old.planned(start)
    has = {_key(r.kind, r.due_at, dev_due) for r in stay}
    for key, due in new.planned(start).items():
        if key in had or key in has:
            continue
        begin = start
        start_is = (f"when the ticket entered {status}" if entered is not None
                    else f"the reload (when the ticket entered {status} is not recorded)")
        if key == RESPOND:
            if customer_waiting_since is None:
                continue   # nobody waits for an answer: no clock (docs/rules.md respond_within)
            if entered is None or customer_waiting_since > entered:
                begin, start_is = customer_waiting_since, "the customer's mail that waits for an answer"
            due = new.planned(begin)[RESPOND]
        elif key == CLOSE:
            due = new.close(start, next((r for r in stay if r.kind == WARN and r.state == "fired"), None))
        armed.append(NewTimer(DUE if key == REMIND else key, due, begin, _describe(key, status, after.spec),
                              start_is))
    return Replan(tuple(moved), tuple(cancelled), tuple(armed))
