"""Where an agent's words end and the notice they answer begins, when their mail client pasted it without marks.

The reply stripper (ingest/quotes.py) knows quotes by their shape: "> "
lines, attributions, header blocks in the languages it has tables for.
A client it does not know (Outlook in Greek, say, whose "Από:" block
stands over the notice's text as is) left the whole notice in the agent's
reply, and it went to the customer: the agent-only lines, the signed
reply and reaction addresses that act in the agent's name. ticketd knows
what it sent, so it finds that text again under the agent's words.
"""

from __future__ import annotations

import re

# The notice's first words found again, in order, from the start of a line: whatever a client does to
# lines and spaces, it keeps words. Fewer words are too common a sentence to be sure of.
NOTICE_WORDS = 12
_FEWEST_WORDS = 5

_NOT_WORD = re.compile(r"[\W_]+")
# A header block's line, "Από: Support <support@example.com>", in any script: a short key and a colon.
_KEY_LINE = re.compile(r"^[\s*>]*[^\W\d_][^:：]{0,30}[:：]")
# A rule between the words and what is pasted (Outlook's "________________________________").
_RULE = re.compile(r"^\s*[-_=*~]{2,}\s*$")


def _words(text: str) -> list[str]:
    # Letters and digits only: "From:" in our text part is "From" in a cell of its HTML, which a client
    # pastes instead.
    return [w for w in (_NOT_WORD.sub("", word) for word in text.casefold().split()) if w]


def notice_start(body: str, notice_text: str) -> int | None:
    """The index in `body`'s lines where `notice_text` starts again (its first words from a line's start),
    moved up over the header block, attribution or rule that introduces it; None where it is not there."""
    wanted = _words(notice_text)[:NOTICE_WORDS]
    if len(wanted) < _FEWEST_WORDS:
        return None
    lines = body.split("\n")
    line_words = [_words(line) for line in lines]
    for j, first in enumerate(line_words):
        if not first or first[0] != wanted[0] or lines[j].lstrip().startswith(">"):
            continue   # a quote marked "> " is the stripper's to read (an inline answer's question stays)
        found: list[str] = []
        for words in line_words[j:]:
            found += words
            if len(found) >= len(wanted):
                break
        # The stripper may have cut the paste further down, at a block it knows: what is left must be it.
        if found[:len(wanted)] == wanted[:len(found)] and len(found) >= _FEWEST_WORDS:
            return _introduction_start(lines, j)
    return None


def _introduction_start(lines: list[str], j: int) -> int:
    """Line j, or where the lines introducing the pasted notice at j start: a header block of two or more
    "Key: value" lines naming an address, or one line ending with a colon (an attribution), and a rule."""
    above = _skip_blank_up(lines, j)
    start = above
    while start > 0 and lines[start - 1].strip() and _KEY_LINE.match(lines[start - 1]) and above - start < 8:
        start -= 1
    block = lines[start:above]
    separate = start == 0 or not lines[start - 1].strip() or _RULE.match(lines[start - 1])
    if separate and len(block) >= 2 and any("@" in line for line in block):
        j = start
    elif above > 0 and _is_attribution(lines[above - 1]) and (above == 1 or not lines[above - 2].strip()):
        j = above - 1
    above = _skip_blank_up(lines, j)
    if above > 0 and _RULE.match(lines[above - 1]):
        j = above - 1
    return j


def _skip_blank_up(lines: list[str], j: int) -> int:
    while j > 0 and not lines[j - 1].strip():
        j -= 1
    return j


def _is_attribution(line: str) -> bool:
    """ "On 24.11.2026 16:00, Support <support@example.com> wrote:" in any language: a line ending with a
    colon that names an address or a date."""
    text = line.strip()
    return text.endswith((":", "：")) and len(text) < 200 and bool(re.search(r"@|\d", text))
