"""Lifecycle decisions: what each side may do to a ticket, read from the words of a mail (pure).

PRODUCT.md, "The lifecycle" and "Customers by email". No I/O: the clock
comes in as `now`, settings (accept words) as arguments.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ticketd.domain.statuses import AGENT_COMMAND_STATUSES, TYPES, Status

# ---------------------------------------------------------------- who may set what


def agent_may_set(status: Status) -> bool:
    """Agents set every status but `new` (PRODUCT.md: only agents set the waiting/parked ones)."""
    return status in AGENT_COMMAND_STATUSES


# ---------------------------------------------------------------- customer replies

_EDGE_PUNCT = " \t.,;:!?¡¿。，！？、…'\"«»“”()-~"


def _normalise(line: str) -> str:
    line = unicodedata.normalize("NFKC", line).casefold().strip(_EDGE_PUNCT)
    return " ".join(line.split())


def first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def is_acceptance(text: str, accept_words: list[str] | tuple[str, ...]) -> bool:
    """The first non-empty line is one accept word (case, width and edge punctuation ignored).

    Deliberately strict: "ok but it still fails" is a rejection with a reason,
    not an acceptance; "OK!" and "Yes." are acceptances.
    """
    line = _normalise(first_line(text))
    return bool(line) and line in {_normalise(w) for w in accept_words}


_RATING_LABELS = re.compile(r"(?i)\b(usefulness|useful|speed|fast|politeness|polite)\b\s*[:=]?")
_RATING = re.compile(r"^\s*([1-5])(?:\s*/\s*5)?[\s,;/|]+([1-5])(?:\s*/\s*5)?[\s,;/|]+([1-5])(?:\s*/\s*5)?\s*[.!]?\s*$")


def parse_rating(text: str) -> tuple[int, int, int] | None:
    """Three numbers 1-5 (usefulness, speed, politeness) and nothing else; labels allowed."""
    cleaned = _RATING_LABELS.sub(" ", text or "")
    m = _RATING.match(cleaned)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


@dataclass(frozen=True)
class CustomerEffect:
    """What a customer-side reply does: kind is accepted | rejected | reopened | rated | none."""
    kind: str
    to_status: Status | None = None
    rating: tuple[int, int, int] | None = None


def customer_reply_effect(status: Status, text: str, accept_words) -> CustomerEffect:
    if status == Status.SOLUTION_PROPOSED:
        if is_acceptance(text, accept_words):
            return CustomerEffect("accepted", Status.CLOSED)
        return CustomerEffect("rejected", Status.OPEN)
    if status == Status.CLOSED:
        if (rating := parse_rating(text)) is not None:
            return CustomerEffect("rated", None, rating)
        return CustomerEffect("reopened", Status.OPEN)
    if status == Status.WAITING_CUSTOMER:
        return CustomerEffect("reopened", Status.OPEN)
    return CustomerEffect("none")


# ---------------------------------------------------------------- key facts

KEY_FACTS = ("type", "source", "scale", "reproducible")
_FACT_LINE = re.compile(r"^\s*(" + "|".join(KEY_FACTS) + r")\s*:\s*(.*?)\s*$", re.IGNORECASE)
_TYPE_SYNONYMS = {"feature": "idea", "feature request": "idea", "suggestion": "idea", "defect": "bug",
                  "error": "bug", "problem": "bug", "question": "question", "idea": "idea", "bug": "bug"}


@dataclass(frozen=True)
class KeyFacts:
    values: dict                    # field -> value, only the ones given and valid
    ignored: tuple[str, ...] = ()   # lines that named a fact with a value we cannot use


def parse_key_facts(text: str) -> KeyFacts:
    """`Type:`, `Source:`, `Scale:`, `Reproducible:` lines at the very top of the first mail."""
    values: dict[str, str] = {}
    ignored: list[str] = []
    for line in (text or "").splitlines():
        if not line.strip():
            if values or ignored:
                break
            continue
        m = _FACT_LINE.match(line)
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "type":
            typed = _TYPE_SYNONYMS.get(_normalise(value))
            if typed in TYPES:
                values["type"] = typed
            else:
                ignored.append(line.strip())
        elif value:
            values[key] = value[:500]
    return KeyFacts(values, tuple(ignored))


# ---------------------------------------------------------------- times in commands

_DURATION = re.compile(r"^(\d{1,4})\s*(s|m|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value: str, now: datetime) -> datetime | None:
    """A duration (`3d`, `12h`, `2w`) from now, or an ISO date / date-time (UTC); None if neither.

    A bare date means the start of that day, UTC. Times are naive UTC like
    the rest of the store.
    """
    value = (value or "").strip()
    if m := _DURATION.match(value):
        return now + timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return datetime.combine(date.fromisoformat(value), time())
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
    return parsed

