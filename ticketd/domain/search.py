"""What `tickets list --search` looks for, and the piece of a message it shows for a hit."""

from __future__ import annotations

import re

# A "quoted phrase" stays one term; anything else splits at white space.
# Apostrophes are text ("can't print"), so shell-style quoting is not used.
_TERM = re.compile(r'"([^"]*)"|(\S+)')

SNIPPET_CHARS = 120


def search_terms(query: str) -> list[str]:
    """The terms of a search, lower-cased: each must appear somewhere on a ticket.

    `printer "on fire"` is two terms, `printer` and `on fire`. A stray
    quote mark is text. Raises ValueError when nothing is left to look for.
    """
    terms = []
    for phrase, word in _TERM.findall(query):
        term = " ".join((phrase if phrase else word).split()).lower()
        if term and term not in terms:
            terms.append(term)
    if not terms:
        raise ValueError("--search needs a word to look for")
    return terms


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `text` around its first term, on one line, cut ends marked with "…".

    The text is read case-insensitively, as the database compared it; where
    the terms are not found (a case fold the database and Python disagree
    on), the text's beginning is shown. Only a window around the hit is
    flattened: a long mail costs no more than a short one.
    """
    longest_first = sorted(terms, key=len, reverse=True)
    pattern = re.compile("|".join(r"\s+".join(map(re.escape, t.split())) for t in longest_first), re.IGNORECASE)
    found = pattern.search(text)
    low = max(0, found.start() - 3 * width) if found else 0
    high = min(len(text), (found.end() if found else 0) + 3 * width)
    flat = " ".join(text[low:high].split())
    found = pattern.search(flat)
    start = max(0, found.start() - (width - (found.end() - found.start())) // 3) if found else 0
    end = min(len(flat), start + width)
    start = max(0, min(start, end - width))
    cut_before = start > 0 or bool(text[:low].strip())
    cut_after = end < len(flat) or bool(text[high:].strip())
    return ("…" if cut_before else "") + flat[start:end] + ("…" if cut_after else "")
