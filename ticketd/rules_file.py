"""Load rules.yaml into a frozen RuleSet, or fail with every error located and explained.

Safe YAML (marks kept per path), then strict pydantic models (unknown keys
are errors), then cross-checks (every group and agent referenced exists).
Patterns compile with RE2, which has no backtracking: a pattern run against
attacker-controlled mail cannot hang the daemon (issue 5).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ticketd.domain.daily_summary import DailySummary
from ticketd.domain.rules import (
    Agent,
    BusinessHours,
    Condition,
    Group,
    Route,
    RuleSet,
    TimerSpec,
)
from ticketd.domain.statuses import PRIORITIES, TYPES, Status
from ticketd.domain.timers import FURTHEST_AHEAD_DAYS, WAITING_STATUSES, with_defaults
from ticketd.strict_yaml import DuplicateKeyError, UniqueKeyLoader, character_error, not_utf8_error, too_deep_error

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# The longest duration the file accepts: the furthest ahead an agent's date
# may lie. Timers are `now + duration` as a datetime, which ends in the year
# 9999: 3000000d passed `rules check` and then every new mail was
# quarantined with OverflowError.
MAX_DURATION_DAYS = FURTHEST_AHEAD_DAYS
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FIELDS = ("from", "to", "cc", "subject", "body", "type", "priority")
# RFC 5322 section 3.6.8: a field name is any printable US-ASCII but the colon (X_Spam_Flag, X.Label).
_HEADER_NAME = re.compile(r"header\.[!-9;-~]+\Z")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False   # the error goes into our message, not to stderr
# Addresses are matched as ticketd keeps them, in lower case: `@BigCustomer\.com$`, copied from a mail
# client, would never match, and an address's case says nothing (domains: RFC 5321 section 2.4).
_ADDRESS_FIELDS = ("from", "to", "cc")
_RE2_ANY_CASE = re2.Options()
_RE2_ANY_CASE.log_errors = False
_RE2_ANY_CASE.case_sensitive = False


class RulesError(ValueError):
    """rules.yaml is not valid; `errors` holds one located, explained line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# ---------------------------------------------------------------- YAML with marks


class _MarkingLoader(UniqueKeyLoader):
    """SafeLoader that remembers where every key and value was written, and refuses a repeated key."""

    def construct_document(self, node):
        """Record every node's position (and each scalar's text as written) before building the data."""
        # Not `marks`: yaml's Parser keeps its own stack under that name, and
        # an empty document (no node to record) left the parser's list there.
        self.node_marks: dict[tuple, tuple[int, int]] = {}
        self.node_texts: dict[tuple, str] = {}
        self._record(node, ())
        return super().construct_document(node)

    def _record(self, node, path: tuple) -> None:
        """Remember where the node at `path` starts, and its children's positions."""
        self.node_marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            # As written: `yes` becomes True, and the error should say `yes`.
            self.node_texts[path] = node.value
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                # The key's own position is what an admin looks for when a key is wrong.
                self.node_marks[path + (key, "<key>")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                self._record(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._record(item, path + (index,))


def _path_text(path: Iterable) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class _Errors:
    def __init__(self, source: str, marks: dict[tuple, tuple[int, int]],
                 texts: dict[tuple, str] | None = None) -> None:
        """Collect errors for `source`, located by the loader's `marks` (and `texts`, scalars as written)."""
        self.source = source
        self.marks = marks
        self.texts = texts or {}
        self.items: list[tuple[tuple[int, int], str]] = []
        self.paths: set[tuple] = set()

    def said(self, path: tuple) -> bool:
        """Whether an error at `path` is added already: a second one there would only contradict it."""
        return tuple(path) in self.paths

    def written(self, path: tuple, value: object) -> str:
        """The value at `path` as the admin wrote it (`yes`, not True), else its repr."""
        return self.texts.get(tuple(path), repr(value))

    def add(self, path: tuple, message: str, *, at_key: bool = False, kind: str = "") -> None:
        """Add `message` located at `path` (its key's position with `at_key`); `kind`: e.g. "warning: "."""
        path = tuple(path)
        self.paths.add(path)
        mark = self.marks.get(path + ("<key>",)) if at_key else None
        probe = path
        while mark is None:
            mark = self.marks.get(probe)
            if not probe:
                break
            probe = probe[:-1]
        line, col = mark or (1, 1)
        self.items.append(((line, col), f"{self.source}:{line}:{col}: {kind}{_path_text(path)}: {message}"))

    def line_of(self, path: tuple) -> int:
        """The line `path` was written on (1 if unknown)."""
        return self.marks.get(tuple(path), (1, 1))[0]

    def sorted_lines(self) -> tuple[str, ...]:
        """The lines added, in file order."""
        return tuple(text for _, text in sorted(self.items, key=lambda item: item[0]))

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesError([text for _, text in sorted(self.items, key=lambda item: item[0])])


# ---------------------------------------------------------------- the file's shape


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AgentModel(_Strict):
    email: str
    name: str | None = None
    groups: list[str] = Field(default_factory=list)
    away: bool = False
    # strict: pydantic would read `true` as 1 and refuse 2.5 in its own words.
    max_open: int | None = Field(default=None, ge=1, strict=True)
    timezone: str | None = None


class GroupModel(_Strict):
    assign: Literal["round_robin", "least_open"] = "round_robin"


class ThenModel(_Strict):
    group: str | None = None
    assignee: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    type: Literal["question", "idea", "bug"] | None = None
    tags: list[str] = Field(default_factory=list)
    suppress_ack: bool = False
    close: bool = False
    requester: Literal["from", "reply_to"] | None = None


class RouteModel(_Strict):
    name: str | None = None
    if_: dict[str, str | list[str]] = Field(default_factory=dict, alias="if")
    then: dict[str, Any] | None = None   # validated on its own (ThenModel), so both halves report
    continue_: bool = Field(default=False, alias="continue")


class TimerModel(_Strict):
    # Durations are checked by parse_duration, not pydantic: `4` (no unit)
    # must hear "add a unit", not "quote it", which would still be wrong.
    respond_within: Any = None
    on_breach: Literal["reassign", "notify"] = "reassign"
    warn_after: Any = None
    close_after: Any = None
    remind_before: Any = None
    business_hours: bool = False


class BusinessHoursModel(_Strict):
    timezone: str = "UTC"
    week: dict[str, str | list[str]] = Field(default_factory=dict)
    holidays: list[Any] = Field(default_factory=list)   # read by _holidays: YAML builds no dates (strict_yaml)


class DailySummaryModel(_Strict):
    at: str
    timezone: str | None = None
    days: list[str] = Field(default_factory=lambda: list(_DAYS))


_TOP = {"agents": list, "groups": dict, "routes": list, "timers": dict, "business_hours": dict,
        "daily_summary": dict}


@dataclass
class _Parsed:
    """The sections that validated, each item with its index or key (broken items left out)."""
    agents: list[tuple[int, AgentModel]] = field(default_factory=list)
    groups: dict[str, GroupModel] = field(default_factory=dict)
    group_names: list[str] = field(default_factory=list)   # including ones with broken settings
    thens: dict[int, ThenModel | None] = field(default_factory=dict)   # None: broken, already reported
    routes: list[tuple[int, RouteModel]] = field(default_factory=list)
    timers: dict[str, TimerModel] = field(default_factory=dict)
    business_hours: BusinessHoursModel | None = None
    daily_summary: DailySummaryModel | None = None


def _validate(model: type[BaseModel], value: Any, path: tuple, errors: _Errors):
    """`value` as `model`, or None with its errors added (an empty entry is an empty mapping).

    With errors, the keys that were right are validated again without the
    wrong ones, and what that gives goes on to the later checks (a group
    that does not exist, a duration that is none): `rules check` lists every
    error at once, not one per mapping per run. The file is refused either way.
    """
    if value is None:
        value = {}
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        _pydantic_errors(errors, exc, path, model)
        wrong = {e["loc"][0] for e in exc.errors() if e["loc"]}
        if not isinstance(value, dict) or not wrong:
            return None
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in wrong})
        except ValidationError:
            return None


def _parse(data: dict, errors: _Errors) -> _Parsed:
    """Validate item by item, so one broken entry does not hide the errors of the others."""
    parsed = _Parsed()
    for key, value in data.items():
        if key not in _TOP:
            close = difflib.get_close_matches(str(key), _TOP, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(_TOP)
            errors.add((key,), f"unknown key `{key}`; {hint}", at_key=True)
        elif value is not None and not isinstance(value, _TOP[key]):
            errors.add((key,), "write a list of entries, each starting with -" if _TOP[key] is list
                       else "write a mapping of name: settings")
    agents, routes = data.get("agents") or [], data.get("routes") or []
    groups, timers = data.get("groups") or {}, data.get("timers") or {}
    if isinstance(agents, list):
        for i, item in enumerate(agents):
            if (m := _validate(AgentModel, item, ("agents", i), errors)) is not None:
                parsed.agents.append((i, m))
    if isinstance(groups, dict):
        parsed.group_names = [str(name) for name in groups]
        for name, item in groups.items():
            if (m := _validate(GroupModel, item, ("groups", name), errors)) is not None:
                parsed.groups[str(name)] = m
    if isinstance(routes, list):
        for i, item in enumerate(routes):
            m = _validate(RouteModel, item, ("routes", i), errors)
            if m is None and isinstance(item, dict) and isinstance(item.get("then"), dict):
                _validate(ThenModel, item["then"], ("routes", i, "then"), errors)   # report both halves
            if m is not None:
                # A broken `then:` is reported; the `if:` is still checked.
                then = _validate(ThenModel, m.then, ("routes", i, "then"), errors)
                parsed.routes.append((i, m))
                parsed.thens[i] = then
    if isinstance(timers, dict):
        for status, item in timers.items():
            if (m := _validate(TimerModel, item, ("timers", status), errors)) is not None:
                parsed.timers[str(status)] = m
    if isinstance(data.get("business_hours"), dict):
        parsed.business_hours = _validate(BusinessHoursModel, data["business_hours"], ("business_hours",), errors)
    if isinstance(data.get("daily_summary"), dict):
        parsed.daily_summary = _validate(DailySummaryModel, data["daily_summary"], ("daily_summary",), errors)
    return parsed


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed where an unknown key `loc` was written (for "did you mean")."""
    return [f.alias or name for name, f in model.model_fields.items()]


_HINTS = {
    "literal_error": lambda e: f"write one of {e['ctx']['expected']}",
    "bool_type": lambda e: "write true or false",
    "bool_parsing": lambda e: "write true or false",
    # max_open is the file's only number.
    "int_parsing": lambda e: "write a whole number of at least 1, e.g. 5",
    "int_type": lambda e: "write a whole number of at least 1, e.g. 5",
    "int_from_float": lambda e: "write a whole number of at least 1, e.g. 5",
    "greater_than_equal": lambda e: "write a whole number of at least 1",
    "list_type": lambda e: "write a list, e.g. [a, b]",
    "dict_type": lambda e: "write a mapping of key: value",
    "model_type": lambda e: "write a mapping of key: value",
    "string_type": lambda e: "write a text value (quote it if it looks like a number or date)",
    "date_from_datetime_parsing": lambda e: "write a date as YYYY-MM-DD",
    "date_parsing": lambda e: "write a date as YYYY-MM-DD",
    "date_type": lambda e: "write a date as YYYY-MM-DD",
    "missing": lambda e: "this key is required",
}


def _union_duplicate(e: dict) -> bool:
    """Whether this error is one half of a `str | list[str]` failure the other half already explains.

    pydantic reports each union member: `subject: yes` got "write a text
    value" and "write a list", two errors for one problem.
    """
    if "str" in e["loc"] and isinstance(e.get("input"), list):
        return True   # a list: its items are checked by the list member
    return "list[str]" in e["loc"] and e["type"] == "list_type"   # not a list: the text member speaks


def _pydantic_errors(errors: _Errors, exc: ValidationError, prefix: tuple, model: type[BaseModel]) -> None:
    """Add pydantic's errors under `prefix`, each in the file's words."""
    for e in exc.errors():
        if _union_duplicate(e):
            continue
        # pydantic adds the union member's name to the location; drop it.
        loc = tuple(p for p in e["loc"] if p not in ("str", "list[str]"))
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_keys(model, loc)
            loc = prefix + loc
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "allowed here: " + ", ".join(allowed)
            errors.add(loc, f"unknown key `{key}`; {hint}", at_key=True)
            continue
        loc = prefix + loc
        got = e.get("input")
        written = errors.written(loc, got)
        if e["type"] == "string_type" and isinstance(got, (bool, int, float)) and written != str(got):
            # YAML 1.1 reads yes/no/on/off as booleans and 9:00 as the number 540 (base 60): quoting is
            # the whole fix.
            reading = str(got).lower() if isinstance(got, bool) else f"the number {got}"
            errors.add(loc, f"got {written}, which YAML reads as {reading}; quote it: '{written}'")
            continue
        hint = _HINTS.get(e["type"], lambda e: e["msg"])(e)
        if isinstance(got, bool) and e["type"] == "int_type":
            hint = "true or false is not a number; " + hint
        shown = errors.written(loc, got) if isinstance(got, bool) else repr(got)
        got_text = "" if isinstance(got, (dict, list)) or e["type"] == "missing" else f"got {shown}; "
        errors.add(loc, f"{got_text}{hint}")


# ---------------------------------------------------------------- values


def parse_duration(value: object) -> float:
    """`<n>s|m|h|d` (or combined, e.g. 1h30m), at most MAX_DURATION_DAYS -> seconds; ValueError says what to write."""
    text = str(value).strip().lower().replace(" ", "")
    if not isinstance(value, bool) and text.isascii() and text.isdigit():
        # `4` or `'4'`: quoting does not help, a unit does.
        raise ValueError(f"{value!r} is not a duration: it has no unit; add one, e.g. '{text}h' "
                         "(s, m, h or d)")
    match = _DURATION.match(text)
    if isinstance(value, bool) or not text or not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration: write <n>s, <n>m, <n>h or <n>d, e.g. 4h or 1h30m")
    # Digits past 9 are over the bound whatever the unit; int() of thousands would be refused anyway.
    too_long = any(len(g or "") > 9 for g in match.groups())
    days, hours, minutes, seconds = (0 if too_long else int(g or 0) for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if too_long or total > MAX_DURATION_DAYS * 86400:
        shown = str(value) if len(str(value)) <= 24 else str(value)[:12] + "..."
        raise ValueError(f"{shown!r} is longer than {MAX_DURATION_DAYS}d (10 years), the longest duration "
                         f"rules.yaml accepts; write at most {MAX_DURATION_DAYS}d, e.g. 30d")
    return float(total)


# RE2's \w and \b know ASCII letters only: `\w+` never matched "Счёт" and
# `счёт\b` never matched at all, yet both compiled. \w becomes the Unicode
# letters, digits and underscore; \b has no Unicode form in RE2 (it would
# need lookaround), so beside non-ASCII text it is refused with a way out.
_WORD = r"\p{L}\p{N}_"


def _unicode_words(text: str) -> tuple[str, bool]:
    r"""`text` with \w (and \W outside brackets) spelled for Unicode; whether it uses \b or \B."""
    out, boundary, in_class, i = [], False, False, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            if escaped == "w":
                out.append(_WORD if in_class else f"[{_WORD}]")
            elif escaped == "W" and not in_class:
                out.append(f"[^{_WORD}]")
            else:
                boundary = boundary or (escaped in "bB" and not in_class)
                out.append(text[i:i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            i += 1
            # A ] first in the brackets (after an optional ^) is a literal.
            for literal in ("^", "]"):
                if text.startswith(literal, i):
                    out.append(literal)
                    i += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out), boundary


def compile_pattern(text: str, any_case: bool = False):
    """Compile with RE2 (`any_case`: upper and lower case alike); ValueError names what RE2 refused
    (backreferences, lookaround)."""
    spelled, boundary = _unicode_words(text)
    letter = next((c for c in text if not c.isascii() and c.isalpha()), None)
    if boundary and letter:
        raise ValueError(
            f"{text!r}: \\b sees only ASCII letters, so it never matches beside {letter!r}; drop it, "
            "or write (^|[^\\p{L}\\p{N}_]) and ($|[^\\p{L}\\p{N}_]) around the word")
    try:
        return re2.compile(spelled, options=_RE2_ANY_CASE if any_case else _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{text!r} is not a pattern RE2 accepts ({reason}); write a regular expression "
            "without backreferences or lookaround, e.g. (?i)invoice|refund") from None


def _email_ok(value: str) -> bool:
    """Whether `value` looks like an address (one @, a dot in the domain, no spaces)."""
    return re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value) is not None


def _duration(errors: _Errors, path: tuple, value: object) -> float | None:
    """The duration at `path` in seconds; None (and an error added) if it is not a valid one."""
    if value is None:
        return None
    if isinstance(value, bool):
        written = errors.written(path, value)
        errors.add(path, f"got {written}, which YAML reads as {str(value).lower()}; write a duration, e.g. 4h")
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        errors.add(path, str(exc))
        return None
    if seconds <= 0:
        errors.add(path, f"{value!r} is zero; write a positive duration, e.g. 30m")
        return None
    return seconds


# ---------------------------------------------------------------- building the RuleSet


def _build_agents(model: _Parsed, errors: _Errors) -> tuple[Agent, ...]:
    agents, seen = [], set()
    for i, a in model.agents:
        email = a.email.strip().lower()
        if not _email_ok(email):
            errors.add(("agents", i, "email"), f"{a.email!r} is not an address; write e.g. alice@example.com")
        if email in seen:
            errors.add(("agents", i, "email"), f"{email} is listed twice; keep one entry per agent")
        seen.add(email)
        if not (a.name or "").strip() and not errors.said(("agents", i, "name")):
            # Customers see this name on the agent's replies; without it the
            # address would stand in, and customers never see agents' private
            # addresses (PRODUCT.md, "Who uses it").
            errors.add(("agents", i, "name"), "write the name customers see on this agent's replies "
                                              "(their address stays private), e.g. name: Alice")
        for j, group in enumerate(a.groups):
            if group not in model.group_names:
                errors.add(("agents", i, "groups", j), _unknown("group", group, model.group_names))
        if a.timezone is not None and not _zone_ok(a.timezone):
            errors.add(("agents", i, "timezone"), f"{a.timezone!r} is not a time zone; write e.g. Europe/Berlin")
        agents.append(Agent(email=email, name=(a.name or "").strip(), groups=tuple(a.groups), away=a.away,
                            max_open=a.max_open, timezone=a.timezone))
    return tuple(agents)


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"no {kind} named {name!r}; did you mean {close[0]!r}?"
    kinds = "statuses" if kind == "status" else f"{kind}s"
    listing = ", ".join(known) if known else f"none defined: add it under {kinds}:"
    return f"no {kind} named {name!r}; known {kinds}: {listing}"


# A `|` or `>` block ends its text with a line break, which the pattern then needs in the mail: never there in a
# subject, an address or a header, so the route silently never applied.
_LINE_BREAK_AT_END = ("{text!r} ends with a line break (a | or > block keeps one), which the mail must then have "
                      "there, as no subject, address or header has; write |- (or >-), or the pattern on the key's "
                      "own line")


def _build_conditions(route: RouteModel, i: int, errors: _Errors) -> tuple[Condition, ...]:
    """The route's `if:` entries as Conditions; each unknown field, value or pattern is an error."""
    conditions = []
    for key, raw in route.if_.items():
        path = ("routes", i, "if", key)
        values = [raw] if isinstance(raw, str) else list(raw)
        if not values:
            # "Any of none" never holds: the route would silently never apply.
            example = "[bug]" if key == "type" else "[high]" if key == "priority" else "['(?i)invoice']"
            errors.add(path, f"an empty list matches no mail, so this route never applies; write at least "
                             f"one value, e.g. {key}: {example}, or remove `{key}`")
            continue
        if key in ("type", "priority"):
            allowed = TYPES if key == "type" else PRIORITIES
            bad = [v for v in values if v not in allowed]
            if bad:
                errors.add(path, f"{bad[0]!r} is not a {key}; write one of {', '.join(allowed)}")
            conditions.append(Condition(field=key, values=tuple(values)))
            continue
        if key not in _FIELDS and not _HEADER_NAME.match(key):
            close = difflib.get_close_matches(key, _FIELDS, n=1)
            hint = f"did you mean `{close[0]}`?" if close else (
                "write one of " + ", ".join(_FIELDS) + " or header.<Name>, e.g. header.X-Priority")
            errors.add(path, f"unknown condition `{key}`; {hint}", at_key=True)
            continue
        patterns = []
        for j, text in enumerate(values):
            at = path if isinstance(raw, str) else path + (j,)
            if text.endswith(("\n", "\r")):
                errors.add(at, _LINE_BREAK_AT_END.format(text=text))
                continue
            try:
                patterns.append(compile_pattern(text, any_case=key in _ADDRESS_FIELDS))
            except ValueError as exc:
                errors.add(at, str(exc))
        field = key if not key.startswith("header.") else "header." + key[len("header."):].lower()
        conditions.append(Condition(field=field, patterns=tuple(patterns)))
    return tuple(conditions)


def _check_then_acts(route: RouteModel, i: int, then: ThenModel | None, errors: _Errors) -> None:
    """A route must do something: without `then:` (or with an empty one) it only swallows mail.

    First match wins, so a matching route without actions stops routing and
    the ticket waits in no group. With `continue: true` it would only add its
    name to the `routed` event, which no admin means to write either.
    """
    if then is None or then != ThenModel() or errors.said(("routes", i, "then")):
        return   # a broken `then:` is reported already; this one acts
    if set(route.then or {}) - then.model_fields_set:
        return   # it was given actions, wrong ones (reported already), which _validate left out of `then`
    if route.continue_:
        problem = "with continue: true and nothing under `then:`, this route changes nothing"
        fix = "write what it does, e.g. then: {tags: [vip]}, or remove the route"
    else:
        problem = ("nothing under `then:`, so mail this route matches stops here (the first match wins) "
                   "and waits in no group")
        fix = "write what it does, e.g. then: {group: support}, or remove the route"
    errors.add(("routes", i, "then"), f"{problem}; {fix}")


def _build_routes(model: _Parsed, agents: tuple[Agent, ...], errors: _Errors) -> tuple[Route, ...]:
    """The routes in file order; unknown groups, agents and bad tags are errors."""
    routes = []
    emails = [a.email for a in agents]
    for i, r in model.routes:
        _check_then_acts(r, i, model.thens[i], errors)
        then = model.thens[i] or ThenModel()
        if then.group is not None and then.group not in model.group_names:
            errors.add(("routes", i, "then", "group"), _unknown("group", then.group, model.group_names))
        assignee = then.assignee.strip().lower() if then.assignee else None
        if assignee is not None and assignee not in emails:
            errors.add(("routes", i, "then", "assignee"), _unknown("agent", assignee, emails))
        if then.close and assignee is not None:
            errors.add(("routes", i, "then", "close"), "a ticket the route closes goes to nobody: "
                       "remove `assignee` (a `group` is kept for when the sender writes again)")
        for j, tag in enumerate(then.tags):
            if not _TAG.match(tag):
                errors.add(("routes", i, "then", "tags", j),
                           f"{tag!r} is not a tag; write lower-case ASCII letters (a-z), digits, - _ . :, e.g. vip")
        routes.append(Route(
            name=r.name or f"route {i + 1}", conditions=_build_conditions(r, i, errors), group=then.group,
            assignee=assignee, priority=then.priority, type=then.type, tags=tuple(then.tags),
            suppress_ack=then.suppress_ack, close=then.close, requester=then.requester, continue_=r.continue_,
        ))
    return tuple(routes)


def _build_timers(model: _Parsed, errors: _Errors) -> dict[str, TimerSpec]:

    timers = {}
    statuses = [s.value for s in Status]
    for status, t in model.timers.items():
        path = ("timers", status)
        if status not in statuses:
            errors.add(path, _unknown("status", status, [s for s in statuses if s != "closed"]), at_key=True)
            continue
        if status == Status.CLOSED.value:
            errors.add(path, "a closed ticket has no timers; remove this entry", at_key=True)
            continue
        spec = TimerSpec(
            respond_within=_duration(errors, path + ("respond_within",), t.respond_within),
            on_breach=t.on_breach,
            warn_after=_duration(errors, path + ("warn_after",), t.warn_after),
            close_after=_duration(errors, path + ("close_after",), t.close_after),
            remind_before=_duration(errors, path + ("remind_before",), t.remind_before),
            business_hours=t.business_hours,
        )
        for key in ("warn_after", "close_after"):
            if getattr(t, key) is not None and status not in WAITING_STATUSES:
                errors.add(path + (key,), f"{key} only applies to waiting_customer and solution_proposed; "
                                          "move it under timers.waiting_customer")
        if t.remind_before is not None and status != Status.IN_DEVELOPMENT.value:
            errors.add(path + ("remind_before",), "remind_before only applies to in_development; move it "
                                                  "under timers.in_development")
        # PRODUCT.md's defaults (warn 3d, close 4d) fill what the entry leaves
        # out, so the pair in effect is checked: {warn_after: 5d} alone would
        # close before it warns.
        effective = with_defaults(status, spec)
        unreadable = (t.warn_after is not None and spec.warn_after is None) or (
            t.close_after is not None and spec.close_after is None)   # said already; no pair to compare
        if status == Status.SOLUTION_PROPOSED.value and (t.warn_after is None) != (t.close_after is None):
            # No defaults here: a lone warn_after tells the customer "closed soon" and never closes; a lone
            # close_after closes a ticket whose customer was never warned.
            given, missing = ("warn_after", "close_after") if t.close_after is None else ("close_after", "warn_after")
            errors.add(path + (given,), f"solution_proposed has no default {missing}: give both (the reminder "
                                        f"promises the close), e.g. warn_after: 3d, close_after: 7d")
        elif (not unreadable and effective.warn_after and effective.close_after
              and effective.close_after <= effective.warn_after):
            key = "close_after" if t.close_after is not None else "warn_after"
            errors.add(path + (key,), f"close_after ({t.close_after or '4d by default'}) must be later than "
                                      f"warn_after ({t.warn_after or '3d by default'}); e.g. warn_after: 3d, "
                                      "close_after: 4d")
        if t.business_hours and model.business_hours is None:
            errors.add(path + ("business_hours",), "business_hours: true needs a top-level business_hours: "
                                                   "{timezone: ..., week: {mon: '09:00-17:00', ...}}")
        timers[status] = spec
    return timers


def _build_business_hours(model: _Parsed, errors: _Errors) -> BusinessHours | None:
    bh = model.business_hours
    if bh is None:
        return None
    if not _zone_ok(bh.timezone):
        errors.add(("business_hours", "timezone"), f"{bh.timezone!r} is not a time zone; write e.g. Europe/Berlin")
    week: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, spans in bh.week.items():
        path = ("business_hours", "week", day)
        if day not in _DAYS:
            errors.add(path, f"unknown day `{day}`; write one of {', '.join(_DAYS)}", at_key=True)
            continue
        out = []
        for text in [spans] if isinstance(spans, str) else spans:
            m = _HOURS.match(text.strip())
            start = end = -1
            if m:
                h1, m1, h2, m2 = (int(g) for g in m.groups())
                start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
            if not m or not (0 <= start < end <= 86400) or m1 >= 60 or m2 >= 60:
                errors.add(path, f"{text!r} is not a span of hours; write e.g. '09:00-17:00'")
                continue
            out.append((start, end))
        week[_DAYS.index(day)] = tuple(sorted(out))
    if bh.week and not any(week.values()):
        errors.add(("business_hours", "week"), "no working hours at all; write e.g. mon: '09:00-17:00'")
    if not bh.week:
        errors.add(("business_hours", "week"), "write the working hours, e.g. week: {mon: '09:00-17:00'}")
    return BusinessHours(timezone=bh.timezone, week=week, holidays=_holidays(bh.holidays, errors))


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _holidays(values: list, errors: _Errors) -> frozenset[date]:
    """business_hours.holidays as dates; each one that is no YYYY-MM-DD date is an error saying why."""
    days = set()
    for i, value in enumerate(values):
        path = ("business_hours", "holidays", i)
        written = errors.texts.get(path, value if isinstance(value, str) else str(value))
        text = value.strip() if isinstance(value, str) else None
        try:
            if text is None or not _DATE.match(text):
                raise ValueError("write a date as YYYY-MM-DD")
            days.add(date.fromisoformat(text))
        except ValueError as exc:
            why = str(exc) if str(exc).startswith("write") else f"{exc}; write a date as YYYY-MM-DD"
            errors.add(path, f"{written!r} is not a date: {why}, e.g. 2026-12-24")
    return frozenset(days)


_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _build_daily_summary(model: _Parsed, errors: _Errors) -> DailySummary | None:
    spec = model.daily_summary
    if spec is None:
        return None
    m = _TIME.match(spec.at.strip())
    at = int(m.group(1)) * 3600 + int(m.group(2)) * 60 if m else -1
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        errors.add(("daily_summary", "at"), f"{spec.at!r} is not a time of day; write e.g. '08:30'")
    # Its own zone, else the business hours' one: a desk states its time zone once.
    timezone = spec.timezone or (model.business_hours.timezone if model.business_hours else "UTC")
    if not _zone_ok(timezone):
        errors.add(("daily_summary", "timezone"), f"{timezone!r} is not a time zone; write e.g. Europe/Berlin")
    for i, day in enumerate(spec.days):
        if day not in _DAYS:
            errors.add(("daily_summary", "days", i), f"unknown day `{day}`; write one of {', '.join(_DAYS)}")
    if not spec.days:
        errors.add(("daily_summary", "days"), "no days at all; leave `days` out for every day")
    return DailySummary(at=max(at, 0), timezone=timezone,
                        days=frozenset(_DAYS.index(d) for d in spec.days if d in _DAYS))


_UNCLOSED = {"while scanning a quoted scalar": "the quote opened here is never closed; close it on this line",
             "while parsing a flow mapping": "the { opened here is never closed; add the }",
             "while parsing a flow sequence": "the [ opened here is never closed; add the ]"}


def _yaml_error(exc: yaml.MarkedYAMLError, text: str, source: str) -> str:
    """One located line for a YAML error.

    An unclosed quote or bracket is found only at the end of the file, a line
    past the last one: the place to fix is where it opened (context_mark).
    """
    mark = exc.problem_mark or exc.context_mark
    at_end = mark is not None and mark.index >= len(text.rstrip())
    if at_end and exc.context_mark is not None:
        mark = exc.context_mark
        explained = _UNCLOSED.get(exc.context or "", f"{exc.context} here, the file ends first; close it")
        return f"{source}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {explained}"
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    if isinstance(exc, DuplicateKeyError):
        return f"{where}: {exc.problem}"
    if mark is not None and text[mark.index:mark.index + 1] == "\t":
        return f"{where}: not valid YAML: a tab; YAML indents with spaces only, write spaces instead"
    return (f"{where}: not valid YAML: {exc.problem or exc}; check indentation, colons "
            "and quotes (quote patterns that contain : # [ ] { })")


def load_rules_text(text: str, source: str = "rules.yaml") -> RuleSet:
    """Parse and validate; RulesError lists every problem, located and explained."""
    try:
        loader = _MarkingLoader(text)   # the reader checks every character first
    except yaml.reader.ReaderError as exc:
        raise RulesError([character_error(exc, text, source)]) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise RulesError([_yaml_error(exc, text, source)]) from None
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise RulesError([too_deep_error(source)]) from None
    finally:
        loader.dispose()
    errors = _Errors(source, getattr(loader, "node_marks", {}), getattr(loader, "node_texts", {}))
    if data is None or data == {}:
        # An editor that truncates and then writes, or `: > rules.yaml`, shows
        # the daemon an empty file: applied, every agent would vanish and every
        # open ticket be unassigned and reassigned. Refused, the rules in
        # force stay.
        raise RulesError([(f"{source}:1:1: (top level): the file is empty; a rules file needs at least "
                          "`agents:`, e.g. agents: [{email: alice@example.com, name: Alice}]")])
    if not isinstance(data, dict):
        errors.add((), "the file must be a mapping with agents:, groups:, routes: and timers:")
        errors.raise_if_any()
    model = _parse(data, errors)
    agents = _build_agents(model, errors)
    routes = _build_routes(model, agents, errors)
    timers = _build_timers(model, errors)
    business_hours = _build_business_hours(model, errors)
    daily_summary = _build_daily_summary(model, errors)
    errors.raise_if_any()
    return RuleSet(
        agents=agents,
        groups={name: Group(name=name, assign=spec.assign) for name, spec in model.groups.items()},
        routes=routes, timers=timers, business_hours=business_hours, daily_summary=daily_summary,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(), source=source,
        warnings=_warnings(model, agents, routes, errors),
    )


# ---------------------------------------------------------------- warnings


def _warnings(model: _Parsed, agents: tuple[Agent, ...], routes: tuple[Route, ...], errors: _Errors) -> tuple[str, ...]:
    """Located warnings for a valid file that leaves mail waiting for nobody (docs/rules.md, "Warnings")."""
    found = _Errors(errors.source, errors.marks, errors.texts)
    _warn_routes(model, agents, routes, found)
    _warn_route_names(model, routes, found)
    _warn_unreachable_routes(model, routes, found)
    _warn_agents(model, agents, found)
    _warn_timers(model, found)
    return found.sorted_lines()


def _warn_timers(model: _Parsed, found: _Errors) -> None:
    """Timer keys that change nothing where they are written: an admin reading `business_hours: true` beside
    `warn_after: 3d` expects three working days, and gets a weekend's warning and close."""
    for status, t in model.timers.items():
        path = ("timers", status)
        calendar = [key for key in ("warn_after", "close_after", "remind_before") if getattr(t, key) is not None]
        if t.business_hours and calendar:
            found.add(path + ("business_hours",), "business_hours counts respond_within only; "
                      f"{' and '.join(calendar)} here run in calendar time (a weekend included)", kind="warning: ")
        elif t.business_hours and t.respond_within is None:
            found.add(path + ("business_hours",), "business_hours counts respond_within only, which this entry "
                                                  "lacks, so it changes nothing", kind="warning: ")
        if "on_breach" in t.model_fields_set and t.respond_within is None:
            found.add(path + ("on_breach",), "on_breach says what a missed respond_within does, and this entry has "
                                             "none, so it changes nothing; add e.g. respond_within: 4h",
                      kind="warning: ")


def _warn_routes(model: _Parsed, agents: tuple[Agent, ...], routes: tuple[Route, ...], found: _Errors) -> None:
    """No routes at all, routes to a group nobody (or only away agents) would take mail from, and to an away
    agent."""
    if not routes:
        found.add(("routes",), "no routes, so every new ticket waits in no group, unassigned; add one, e.g. "
                               "routes: [{name: everything else, then: {group: support}}]", kind="warning: ")
    by_email = {a.email: a for a in agents}
    for (i, _), route in zip(model.routes, routes):
        if route.close:
            continue
        named = by_email.get(route.assignee or "")
        if named is not None and named.away:
            found.add(("routes", i, "then", "assignee"), (
                f"{named.email} is away, so {route.group} assigns what this route sends" if route.group else
                f"{named.email} is away and this route names no group, so what it sends waits with them; "
                "add a group: to the route's then:"), kind="warning: ")
        if route.group is None:
            continue
        members = [a for a in agents if route.group in a.groups]
        path = ("routes", i, "then", "group")
        if not members:
            found.add(path, f"group {route.group!r} has no agents, so mail this route sends there waits "
                            f"unassigned; add {route.group} to an agent's groups:", kind="warning: ")
        elif all(a.away for a in members):
            found.add(path, f"every agent of group {route.group!r} is away "
                            f"({', '.join(a.email for a in members)}), so mail this route sends there waits "
                            f"unassigned until one is back; set away: false on one, or add {route.group} to "
                            "another agent's groups:", kind="warning: ")


def _warn_route_names(model: _Parsed, routes: tuple[Route, ...], found: _Errors) -> None:
    """Two routes of one name (a route without one is `route N`): routing is the same, but the `routed` event
    and `rules test` name the route that matched, and then name either."""
    first: dict[str, int] = {}
    for (i, _), route in zip(model.routes, routes):
        key = " ".join(route.name.split())
        if key not in first:
            first[key] = i
            continue
        j = first[key]
        found.add(("routes", i, "name"), f"{route.name!r} is also the name of routes[{j}] (line "
                                         f"{found.line_of(('routes', j))}), so a ticket's history (its routed event) "
                                         "cannot tell which of them matched; give each route a name of its own",
                  kind="warning: ")


def _warn_unreachable_routes(model: _Parsed, routes: tuple[Route, ...], found: _Errors) -> None:
    """Routes below one that matches every mail and stops there: a route added at the end of the file, under
    `everything else`, never applies."""
    stop: tuple[int, Route] | None = None
    for (i, _), route in zip(model.routes, routes):
        if stop is not None:
            j, catch_all = stop
            found.add(("routes", i), f"{route.name!r} never applies: {catch_all.name!r} above it (line "
                                     f"{found.line_of(('routes', j))}) has no conditions and no continue: true, "
                                     "so every mail stops there; move this route above it", kind="warning: ")
        elif not route.conditions and not route.continue_:
            stop = (i, route)


def _name_key(text: str) -> str:
    """A name as `#assign` compares it (ticketd/domain/commands.py): spaces collapsed, case folded."""
    return " ".join(text.split()).casefold()


def _warn_agents(model: _Parsed, agents: tuple[Agent, ...], found: _Errors) -> None:
    """Available agents in no group, and names `#assign <name>` cannot reach (shared, or a group's)."""
    groups = {_name_key(g): g for g in model.group_names}
    named: dict[str, tuple[int, Agent]] = {}
    for (i, _), agent in zip(model.agents, agents):
        if not agent.groups and not agent.away:
            example = model.group_names[0] if model.group_names else "support"
            found.add(("agents", i), f"{agent.email} is in no group, so round robin never gives them work "
                                     f"(only #assign and a route's assignee do); add e.g. groups: [{example}], "
                                     "or away: true", kind="warning: ")
        key = _name_key(agent.name)
        if not key:
            continue
        if key in groups:
            found.add(("agents", i, "name"), f"{agent.name!r} is also a group's name, so `#assign {agent.name}` "
                                             f"goes to group {groups[key]!r}, never to {agent.email}; give the "
                                             "agent a fuller name, e.g. their surname too", kind="warning: ")
        if key in named:
            first_i, first = named[key]
            found.add(("agents", i, "name"), f"{agent.email} has the name of {first.email} (line "
                                             f"{found.line_of(('agents', first_i))}), so `#assign "
                                             f"{agent.name.strip()}` is refused as naming two agents; give each "
                                             "a name of their own, e.g. with their surname", kind="warning: ")
        else:
            named[key] = (i, agent)


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate the rules file at `path`; RulesError if it cannot be read or is not valid."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesError([f"{path}: cannot read the rules file: {exc.strerror}"]) from None
    return load_rules_bytes(raw, str(path))


def load_rules_bytes(raw: bytes, source: str) -> RuleSet:
    """Validate the bytes of a rules file already read (the watcher loads exactly the bytes it saw settle)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError([not_utf8_error(exc, raw, source)]) from None
    return load_rules_text(text, source)


def summary(rules: RuleSet) -> str:
    """One line for `rules check` and the reload log."""
    def n(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"

    # waiting_customer's warn and close run by default (PRODUCT.md) when the file gives it no timers.
    timed = [*rules.timers] + [s.value for s in Status if s.value not in rules.timers
                               and with_defaults(s.value, None) is not None]
    timers = ", ".join(f"{s} (defaults)" if s not in rules.timers else s for s in timed)
    summary_time = f", {rules.daily_summary.describe()}" if rules.daily_summary else ""
    return (f"{n(len(rules.agents), 'agent')}, {n(len(rules.groups), 'group')}, {n(len(rules.routes), 'route')}, "
            f"timers for {timers}{summary_time}, digest {rules.digest[:12]}")
