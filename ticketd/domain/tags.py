"""The ticket tag in subjects, e.g. `[#1042]`: format, find, and clean subjects."""

from __future__ import annotations

import re

from ticketd.domain.ids import possible_id

TAG_RE = re.compile(r"\[#(\d{1,12})\]")
_SPACED_TAG_RE = re.compile(r"\s*\[#(\d{1,12})\]\s*")
# Reply and forward prefixes in the languages our customers write in.
_PREFIX_RE = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|r|odp|enc|res|ответ|回复|转发)\s*(\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def format_tag(ticket_id: int) -> str:
    return f"[#{ticket_id}]"


def find_tags(subject: str | None) -> list[int]:
    """Every ticket tag in a subject, in order; `[#0]` or one past any ticket number names none."""
    return [number for number in map(int, TAG_RE.findall(subject or "")) if possible_id(number)]


def strip_prefixes(subject: str) -> str:
    """The subject without Re:/Fwd:/AW: and friends in front."""
    return _PREFIX_RE.sub("", subject or "").strip()


def same_subject(first: str, other: str) -> bool:
    """Whether two subjects say the same, Re:/Fwd: and [bracketed] list or ticket tags aside."""
    def bare(subject: str) -> str:
        return " ".join(re.sub(r"\[[^\]]*\]", " ", strip_prefixes(subject)).casefold().split())
    return bare(first) == bare(other)


def tagged_subject(ticket_id: int, subject: str) -> str:
    """`[#N] subject`, with any tag of N already present removed first."""
    clean = strip_prefixes(subject)
    own = str(ticket_id)
    clean = _SPACED_TAG_RE.sub(lambda m: " " if m.group(1) == own else m.group(0), clean).strip()
    return f"{format_tag(ticket_id)} {clean}".strip()
