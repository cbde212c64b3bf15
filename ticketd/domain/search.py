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
    on), the text's beginning is shown.
    """
    flat = " ".join(text.split())
    found = re.search("|".join(map(re.escape, sorted(terms, key=len, reverse=True))), flat, re.IGNORECASE)
    if found is None:
        start = 0
    else:
        start = max(0, found.start() - (width - (found.end() - found.start())) // 3)
    end = min(len(flat), start + width)
    start = max(0, min(start, end - width))
    piece = flat[start:end]
    return ("…" if start > 0 else "") + piece + ("…" if end < len(flat) else "")
