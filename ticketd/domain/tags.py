"""The ticket tag in subjects, e.g. `[#1042]`: format, find, and clean subjects."""

from __future__ import annotations

import re
import unicodedata

from ticketd.domain.ids import possible_id

TAG_RE = re.compile(r"\[#(\d{1,12})\]")
_SPACED_TAG_RE = re.compile(r"(?<!\s)\s*\[#(\d{1,12})\]\s*")
# Reply and forward prefixes in the languages our customers write in.
_PREFIX_RE = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|r|odp|enc|res|ответ|回复|转发)\s*(\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE,
)


# The longest subject a ticket keeps: what every mail about it repeats in its Subject and often its text.
# A mail's own subject is stored as it came; RFC 5322 sets no limit (only 998 octets a line, unfolded none).
SUBJECT_MAX = 250


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
        # The tags go first: Mailman 3 puts its prefix before a reply's "Re:" ("[users] Re: x"), where
        # the writer's own copy says "Re: x"; with the tag still in front, no prefix was stripped.
        return " ".join(strip_prefixes(re.sub(r"\[[^\]]*\]", " ", subject or "")).casefold().split())
    return bare(first) == bare(other)


def tagged_subject(ticket_id: int, subject: str) -> str:
    """`[#N] subject`, with any tag of N already present removed first."""
    clean = strip_prefixes(subject)
    own = str(ticket_id)
    clean = _SPACED_TAG_RE.sub(lambda m: " " if m.group(1) == own else m.group(0), clean).strip()
    return f"{format_tag(ticket_id)} {clean}".strip()


def shortened(subject: str, limit: int = SUBJECT_MAX) -> str:
    """`subject`, or its first characters ending "…" within `limit`: cut after a word when one ends near
    the end, never between a character and its combining marks or inside an emoji sequence, a flag's two
    regional indicators or a subdivision flag's tags among them."""
    if len(subject) <= limit:
        return subject
    end = limit - 1
    space = subject.rfind(" ", limit * 4 // 5, end + 1)
    if space > 0:
        end = space
    while end and (unicodedata.combining(subject[end]) or subject[end] in "\u200d\ufe0f\ufe0e"
                   or subject[end - 1] == "\u200d" or "\U0001f3fb" <= subject[end] <= "\U0001f3ff"
                   or "\U000e0020" <= subject[end] <= "\U000e007f" or _inside_flag(subject, end)):
        end -= 1
    return subject[:end].rstrip() + "…"


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _inside_flag(subject: str, end: int) -> bool:
    """Whether `end` falls between the two regional indicators of a flag such as 🇩🇪: they pair up from the
    start of their run, so a cut after an odd number of them splits one."""
    if not _regional(subject[end]):
        return False
    start = end
    while start and _regional(subject[start - 1]):
        start -= 1
    return (end - start) % 2 == 1
