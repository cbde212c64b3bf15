"""Which timers a status starts, and when they are due (pure: the clock comes in as `now`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ticketd.domain.lifecycle import parse_when
from ticketd.domain.rules import BusinessHours, TimerSpec
from ticketd.domain.statuses import Status

# PRODUCT.md: waiting_customer warns after 3 days and closes after 4 unless rules.yaml says otherwise.
DEFAULT_WAITING = TimerSpec(warn_after=3 * 86400, close_after=4 * 86400)

RESPOND, WARN, CLOSE, WAKE, DUE = "respond", "warn", "close", "wake", "due"

# Statuses that wait for the customer, where silence may warn and then
# close: waiting_customer (PRODUCT.md, with defaults) and, when rules.yaml
# sets it, solution_proposed (a proposal nobody answers stays open for ever).
WAITING_STATUSES = (Status.WAITING_CUSTOMER.value, Status.SOLUTION_PROPOSED.value)


def local_time(at: datetime, zone: str) -> str:
    """A stored (naive UTC) time as a reader in `zone` reads it in mail: `2030-12-01` at their midnight, else to
    the minute with the zone's name (`2030-12-01 09:00 Europe/Berlin`), as templates' `when` filter shows it."""
    local = at.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    if local.time() == time():
        return local.date().isoformat()
    return f"{local:%Y-%m-%d %H:%M} {zone}"


# The timers that a timed status's own date sets (plan): a new `#postpone`
# or `#dev` date replaces these and no other.
DATED_KINDS = (WAKE, DUE)

# The date on the ticket each timed status keeps (PRODUCT.md, "The lifecycle":
# `postponed` with a wake-up time, `in_development` with a due date).
DATE_OF_STATUS = {Status.POSTPONED.value: "postponed_until", Status.IN_DEVELOPMENT.value: "dev_due"}


def dates_left_behind(ticket: Mapping, to: str) -> dict[str, None]:
    """The dates of the timed statuses other than `to` the ticket still holds, cleared: {field: None}.

    A wake-up or due date means something only in its own status; left on a
    ticket that moved on, `tickets show` reads as if it still slept. The
    history keeps it (the event that set it, the wake-up's reason). `to`'s
    own date is the caller's to set.
    """
    return {field: None for status, field in DATE_OF_STATUS.items() if status != to and ticket.get(field) is not None}


# The furthest ahead a date an agent writes may lie (`#postpone`, `#dev`,
# `#away`), and rules.yaml's longest timer duration (ticketd.rules_file takes
# it as MAX_DURATION_DAYS; docs/rules.md "at most 3650d"): a timer is
# `now + duration` as a datetime, which ends in the year 9999, and nothing a
# desk waits for is further off.
FURTHEST_AHEAD_DAYS = 3650

# A duration as parse_when reads one, of any number of digits (`99999d` is one, too long), or with its
# unit spelled out as agents write it (`3 days`, `2 weeks`, `1 hour 30 minutes`); a unit is known by
# its first letter.
_UNIT = r"(weeks?|days?|hours?|minutes?|mins?|seconds?|secs?|[smhdw])(?![a-z])"
_ANY_DURATION = re.compile(rf"^(?:\d+\s*{_UNIT}\s*)+$", re.IGNORECASE)
_DURATION_PART = re.compile(rf"(\d+)\s*{_UNIT}", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TooFarAhead(ValueError):
    """A written time past FURTHEST_AHEAD_DAYS; its message names the bound and the latest time to write."""


def read_ahead(value: str, now: datetime, zone: str = "UTC") -> datetime | None:
    """`parse_when` (a duration from now, or an ISO date in `zone`), bounded; None if `value` is neither.

    A duration's unit may be spelled out, singular or plural: `3 days`, `2weeks`, `1 hour`, `30 minutes`.

    TooFarAhead when it lies more than FURTHEST_AHEAD_DAYS after `now`: a
    duration of any length (`99999d` is a duration, only too long) or an ISO
    date up to the year 9999 and past it in UTC.
    """
    written = (value or "").strip()
    latest = now + timedelta(days=FURTHEST_AHEAD_DAYS)
    too_far = TooFarAhead(f"{written!r} is too far ahead: dates are taken at most {FURTHEST_AHEAD_DAYS}d (10 years) "
                          f"ahead, as rules.yaml's timers are; give a time up to {local_time(latest, zone)}.")
    if _ANY_DURATION.match(written):
        parts = _DURATION_PART.findall(written)
        # Twelve digits are past the bound whatever the unit; int() of thousands of digits is refused anyway.
        if any(len(n.lstrip("0")) > 12 for n, _ in parts):
            raise too_far
        seconds = sum(int(n) * _UNIT_SECONDS[unit[0].lower()] for n, unit in parts)
        if seconds > FURTHEST_AHEAD_DAYS * 86400:
            raise too_far
        return now + timedelta(seconds=seconds)
    at = parse_when(written, now, zone)
    if at is None and _year_9999(written):
        raise too_far   # a date that parse_when could not carry past the year 9999 in UTC
    if at is not None and at > latest:
        raise too_far
    return at


def _year_9999(written: str) -> bool:
    """Whether `written` is an ISO date or date-time in the year 9999 (which UTC may carry past datetime's end)."""
    try:
        return datetime.fromisoformat(written).year == 9999
    except ValueError:
        return False


@dataclass(frozen=True)
class PlannedTimer:
    kind: str          # respond | warn | close | wake | due
    due_at: datetime   # naive UTC, as stored


def add_business_seconds(start: datetime, seconds: float, hours: BusinessHours) -> datetime:
    """`start` (naive UTC) plus `seconds` of working time in the weekly schedule, skipping holidays."""
    zone = ZoneInfo(hours.timezone)
    begun = start.replace(tzinfo=UTC)
    remaining = seconds
    day = begun.astimezone(zone).date()
    for _ in range(3 * 366):  # a schedule with no working day left is caught by the loader
        if day not in hours.holidays:
            for begin, end in hours.week.get(day.weekday(), ()):
                # Spans are wall-clock times, counted in real (UTC) seconds: Python's arithmetic on two
                # times of one zone is wall-clock arithmetic, which made a span holding a DST change
                # an hour too long or short (a 24/7 desk's 1h due 2h later in October).
                span_start = max(_wall_clock(day, begin, zone), begun)
                span_end = _wall_clock(day, end, zone)
                if span_end <= span_start:
                    continue
                available = (span_end - span_start).total_seconds()
                if remaining <= available:
                    return (span_start + timedelta(seconds=remaining)).replace(tzinfo=None)
                remaining -= available
        day += timedelta(days=1)
    return start + timedelta(seconds=seconds)


def _wall_clock(day: date, seconds_of_day: int, zone: ZoneInfo) -> datetime:
    """The UTC time at which `zone`'s clocks show `seconds_of_day` past midnight of `day` (24:00 the next day's)."""
    wall = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds_of_day)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def with_defaults(status: str, spec: TimerSpec | None) -> TimerSpec | None:
    """`spec` with PRODUCT.md's waiting_customer warn_after / close_after filled in where it sets none."""
    # Each default stands on its own: an entry with only respond_within or
    # only warn_after still warns after 3 days and closes after 4.
    if status != Status.WAITING_CUSTOMER.value:
        return spec
    if spec is None:
        return DEFAULT_WAITING
    return replace(spec, warn_after=spec.warn_after or DEFAULT_WAITING.warn_after,
                   close_after=spec.close_after or DEFAULT_WAITING.close_after)


def plan(status: str, spec: TimerSpec | None, now: datetime, *, postponed_until: datetime | None = None,
         dev_due: datetime | None = None, business_hours: BusinessHours | None = None) -> list[PlannedTimer]:
    """The timers a ticket entering `status` at `now` starts."""
    if status == Status.CLOSED.value:
        return []
    spec = with_defaults(status, spec)
    planned: list[PlannedTimer] = []
    if spec is not None and spec.respond_within:
        if spec.business_hours and business_hours is not None:
            due = add_business_seconds(now, spec.respond_within, business_hours)
        else:
            due = now + timedelta(seconds=spec.respond_within)
        planned.append(PlannedTimer(RESPOND, due))
    if status in WAITING_STATUSES and spec is not None:
        if spec.warn_after:
            planned.append(PlannedTimer(WARN, now + timedelta(seconds=spec.warn_after)))
        if spec.close_after:
            planned.append(PlannedTimer(CLOSE, now + timedelta(seconds=spec.close_after)))
    if status == Status.POSTPONED.value and postponed_until is not None:
        planned.append(PlannedTimer(WAKE, postponed_until))
    if status == Status.IN_DEVELOPMENT.value and dev_due is not None:
        before = spec.remind_before if spec is not None and spec.remind_before else 0
        if before and dev_due - timedelta(seconds=before) > now:
            planned.append(PlannedTimer(DUE, dev_due - timedelta(seconds=before)))
        planned.append(PlannedTimer(DUE, dev_due))   # and on the day itself (docs/rules.md)
    return planned


# The timers a mail can make moot: an agent's reply answers a respond clock,
# a customer's reply ends the silence a warning or a close is about.
ANSWERABLE = (RESPOND, WARN, CLOSE)
# The timers about the customer's silence alone, which only their reply can make moot.
SILENCE_KINDS = (WARN, CLOSE)


def held_by_mail_in_line(kind: str, due_at: datetime, oldest_in_line: datetime | None) -> bool:
    """Whether a due timer waits for mail taken in by its due time and not yet processed.

    That mail may be the very answer the timer is about (PRODUCT.md: the
    close is for a customer who is silent); it is processed in seconds, and
    the timer fires at the next sweep if it still stands. Mail that came
    after the due time holds nothing: a desk always receiving would
    otherwise never warn or close.
    """
    return kind in ANSWERABLE and oldest_in_line is not None and oldest_in_line <= due_at


def grace_after_warning(status: str, spec: TimerSpec | None) -> timedelta | None:
    """close_after - warn_after of `status` (defaults included): the time a warning gives; None if it has none."""
    spec = with_defaults(status, spec)
    if spec is None or not spec.warn_after or not spec.close_after:
        return None
    return timedelta(seconds=spec.close_after - spec.warn_after)


def close_after_late_warning(warned_at: datetime, close_due: datetime, grace: timedelta) -> datetime | None:
    """When the close must move to, for a warning sent at `warned_at` that gives `grace`; None: it stands.

    The warning promises the customer close_after - warn_after to answer
    (PRODUCT.md waiting_customer); a daemon down past both times would
    otherwise warn with a closing time gone by and close in the same sweep.
    """
    return warned_at + grace if close_due < warned_at + grace else None


def reminder_overtaken(reminder_due: datetime, dev_due: datetime | None, now: datetime) -> bool:
    """Whether a remind_before reminder ("coming up") fires only once the due date itself has passed.

    The due date's own reminder ("reached") fires in the same sweep and says
    all there is to say: two mails at once, the first promising a date already
    gone, would be noise. The due date stays as the agent set it.
    """
    return dev_due is not None and reminder_due < dev_due <= now


# How many of a ticket's latest messages tell whether its customer waits
# (customer_waits; ticketd/timers.py and the re-plan after a reload read
# that many): notes beyond that many in a row are taken as nobody waiting
# (no clock, no false breach).
WAITING_LOOKBACK = 20


def customer_waits(latest: Iterable[Mapping]) -> bool:
    """Whether, in a ticket's messages newest first, the latest public words are the customer's.

    docs/rules.md: `respond_within` counts from the customer's mail that
    waits for an answer; an agent's public reply answers it, a note or an
    auto-reply (either side's) says nothing to answer.
    """
    for message in latest:
        if message["internal"] or message["auto_generated"]:
            continue
        return message["author_role"] == "customer"
    return False


def wait_started(latest: Iterable[Mapping]) -> datetime | None:
    """When the customer's latest waiting mail came (messages newest first); None if nobody waits.

    The wait a respond clock counts from ends with an agent's public reply
    and a new one starts with the customer's next mail (docs/rules.md).
    """
    for message in latest:
        if message["internal"] or message["auto_generated"]:
            continue
        return message["created_at"] if message["author_role"] == "customer" else None
    return None


def missed_in_wait(events: Iterable[Mapping], since: datetime | None) -> list[str]:
    """The agents whose respond clock ran out on the ticket since `since`, in order, once each.

    Each `timer_breached` event names the agent who held the ticket then
    (from_value); docs/rules.md on_breach: reassign gives the ticket to none
    of them again in the same wait.
    """
    if since is None:
        return []
    return list(dict.fromkeys(e["from_value"] for e in events if e["kind"] == "timer_breached"
                              and e["from_value"] and e["at"] >= since))


def describe(kind: str, status: str, spec: TimerSpec | None) -> str:
    """How a timer reads in history and mail, e.g. "respond_within 4h in new"."""
    def human(seconds: float | None) -> str:
        if not seconds:
            return "?"
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds)}s"

    spec = with_defaults(status, spec)   # a defaulted warn or close reads "3d", not "?"
    if kind == RESPOND:
        return f"respond_within {human(spec.respond_within if spec else None)} in {status}"
    if kind == WARN:
        return f"warn_after {human(spec.warn_after if spec else None)} in {status}"
    if kind == CLOSE:
        return f"close_after {human(spec.close_after if spec else None)} in {status}"
    if kind == WAKE:
        return "postponed until reached"
    return "development due date reached"
