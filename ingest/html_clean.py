"""Sanitised HTML of a mail body, safe to show to an agent (nh3, an allow-list cleaner)."""

from __future__ import annotations

import logging
import operator
import re

import nh3

log = logging.getLogger("ticketd.parse")

# Inline images stay referable by cid:; every other scheme that could run
# code or phone home (javascript:, remote images via data: tricks) goes.
_URL_SCHEMES = {"http", "https", "mailto", "cid"}


def _no_remote_images(element: str, attribute: str, value: str) -> str | None:
    # An image from the web (a tracking pixel, "p.gif?id=…") tells its sender when and where an agent
    # read the mail; the mail's own images (cid:) stay. Links stay links: following one is a choice.
    if element == "img" and attribute in ("src", "srcset") and not value.strip().lower().startswith("cid:"):
        return None
    return value


# nh3's time grows with the square of the nesting depth: 10 000 nested
# <div>s take 0.3 s of CPU, 40 000 take 4 s, and a hostile 2 MB mail held
# processing for minutes. Mail people write nests a few dozen deep (Outlook's
# tables in tables stay under a hundred); deeper HTML is kept as text only.
MAX_DEPTH = 500
# nh3 also holds the whole document, about 200 bytes a tag: a 25 MB part of `<p>a</p>` grew the process by
# 1.1 GB. The corpus's biggest HTML part has 7 412 tags; a part of more tags than this is kept as text only.
MAX_TAGS = 100_000

# As ingest.html_text reads tags: up to the first ">", no "<" inside, the name never given back, so a "<"
# opening no tag costs one look to the next "<" or ">", not one per character after it.
_TAG = re.compile(r"<(/?)([a-zA-Z][^\s/<>]*+)[^<>]*?(/?)>")
_TAG_PARTS = operator.methodcaller("group", 1, 2, 3)
# Elements with no end tag, and those a sibling ends (<p>, <li>, <td>...
# are often left open): neither makes the document deeper.
_FLAT = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                   "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd"})


def nests_deeper_than(markup: str, limit: int) -> bool:
    """Whether the open tags pile up deeper than `limit` anywhere (one linear scan)."""
    depth = 0
    # finditer, not findall: a list of every tag took 100 MB for an 8 MB part.
    for closing, name, self_closing in map(_TAG_PARTS, _TAG.finditer(markup)):
        if name.lower() in _FLAT or self_closing:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def more_tags_than(markup: str, limit: int) -> bool:
    """Whether the markup holds more than `limit` tags (a count of "<" first, which no tag count exceeds)."""
    if markup.count("<") <= limit:
        return False
    return any(n > limit for n, _ in enumerate(_TAG.finditer(markup), 1))


def clean_html(markup: str | None, mail: str = "a mail") -> str | None:
    """The HTML with scripts, styles, event handlers, unsafe URLs and remote images removed; None if absent or
    too deep (`mail` names it in the log line that says so)."""
    if not markup:
        return None
    if nests_deeper_than(markup, MAX_DEPTH):
        log.warning("the HTML part of %s nests deeper than %d elements: kept as text only", mail, MAX_DEPTH)
        return None
    if more_tags_than(markup, MAX_TAGS):
        log.warning("the HTML part of %s holds more than %d tags: kept as text only", mail, MAX_TAGS)
        return None
    return nh3.clean(markup, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer nofollow",
                     attribute_filter=_no_remote_images)
