"""Readable plain text from an HTML mail body (for HTML-only mail).

A single regular-expression tokenizer rather than html.parser: mail HTML is
often hundreds of kilobytes of nested tables, and html.parser spends most
of a mail's parse time there. Blockquotes become "> " quoting, so quoted
history in HTML-only replies can be stripped like plain-text quoting. End
tags that HTML lets a writer leave out are implied the way browsers do, so a
missing </head> or an unclosed hidden element does not swallow the mail.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict

# A tag ends at the first ">" outside quotes, and no unquoted "<" is inside it; the name and the
# attributes are never given back (possessive): a "<" opening no tag ("<a" and a long word, many "<a"
# without a ">") made every later character be tried again, time growing with the square of the mail.
_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"                                   # comments, including Outlook's conditional ones
    r"|<!\[CDATA\[.*?(?:\]\]>|\Z)"
    r"|<[!?][^<>]*>"                                       # doctype, processing instructions
    r"|<(/?)([a-zA-Z][\w:.-]*+)((?:[^<>\"']|\"[^\"]*\"|'[^']*')*+)>",
    re.DOTALL,
)
# Elements whose content is not shown. The raw text ones hold text up to their end tag, never
# markup, so "if (a<b)" in a script is not a tag (HTML's raw text and RCDATA elements).
_SKIP = {"head", "template", "noscript", "xml", "svg"}
_RAW_TEXT = {"script", "style", "title"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "pre", "hr", "center"}
_LINE = {"div", "br", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "address",
         "form", "fieldset", "caption", "figure", "figcaption", "main", "nav", "aside", "blockquote"}
_CELL = {"td", "th"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source", "embed", "param"}
_WHITESPACE = re.compile(r"\s+")
_BLANKS = re.compile(r"[ \t\u00a0]+")
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all", re.IGNORECASE)
# Text laid out by its own line breaks, as in <pre> (CSS Text 3, white-space): ticketd's own HTML
# templates show an agent's words so, and so do some mail clients.
_PRE_STYLE = re.compile(r"white-space\s*:\s*(?:pre|pre-wrap|pre-line|break-spaces)\b", re.IGNORECASE)

# What ends an element without its end tag, after the HTML parsing algorithm ("in body" and
# "in table" insertion modes), reduced to the elements that decide where hidden content stops.
_HEAD_CONTENT = {"base", "basefont", "bgsound", "link", "meta", "noscript", "script", "style", "template", "title"}
_ENDS_P = {"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl",
           "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
           "hgroup", "hr", "li", "dd", "dt", "main", "menu", "nav", "ol", "p", "pre", "section", "summary",
           "table", "ul", "listing", "xmp", "plaintext"}
_TABLE_PARTS = ("td", "th", "tr", "thead", "tbody", "tfoot")


def _implied_ends() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Start tag: [(the open elements it ends, the scope they must be in)]."""
    ends: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for starts, closed, scope in (
        (_ENDS_P, ("p",), "button"),
        ({"li"}, ("li",), "list"),
        ({"dd", "dt"}, ("dd", "dt"), "default"),
        ({"td", "th"}, _TABLE_PARTS[:2], "table"),
        ({"tr"}, _TABLE_PARTS[:3], "table"),
        ({"thead", "tbody", "tfoot"}, _TABLE_PARTS, "table"),
    ):
        for start in starts:
            ends.setdefault(start, []).append((closed, scope))
    return ends


_IMPLIED = _implied_ends()
_END_SCOPE = {"p": "button", "li": "list", "table": "table", **dict.fromkeys(_TABLE_PARTS, "table")}
# An end tag reaches no further down than the nearest of these ("has an element in scope").
_WALLS = {"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"}
_RAW_END = {name: re.compile(r"</%s(?=[\s/>])[^>]*>?" % name, re.IGNORECASE) for name in _RAW_TEXT}
# What a browser strips from an href before following it (URL standard, basic URL parser): C0 controls
# and spaces at either end, tabs and newlines anywhere. Left in, " https://phish.example" hid its target.
_URL_EDGES = "".join(map(chr, range(0x21)))
_URL_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")


def _url_as_followed(href: str) -> str:
    return href.strip(_URL_EDGES).translate(_URL_TAB_NEWLINE)


def _list_start(attrs: str) -> int:
    """The number an <ol>'s first item shows (its start attribute, 1 if none or not a number)."""
    start = _attr(attrs, "start") if "start" in attrs else None
    try:
        return int(start or 1)
    except ValueError:
        return 1


def _attr(attrs: str, name: str) -> str | None:
    match = re.search(r"""(?:^|\s)%s\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""" % name, attrs, re.IGNORECASE)
    if not match:
        return None
    return html.unescape(next(g for g in match.groups() if g is not None))


def _raw_text_end(markup: str, pos: int, name: str, missing: set[str]) -> int:
    """Where the raw text content of `name` opened just before `pos`, and its end tag, stop."""
    found = None if name in missing else _RAW_END[name].search(markup, pos)
    if not found:
        missing.add(name)  # none further on either: searching again would make repeats quadratic
        if name == "title":
            # Browsers would make the rest of the document the title; a mail is better off losing
            # only the title, which never holds markup.
            end = markup.find("<", pos)
            return len(markup) if end < 0 else end
        return len(markup)
    return found.end()


class _OpenElements:
    """HTML's stack of open elements, kept just well enough to know where hidden content ends."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, bool]] = []   # (name, whether it or an ancestor is hidden)
        self.skipping = False                     # the innermost open element is hidden
        self.at: defaultdict[str, list[int]] = defaultdict(list)  # each name's places in the stack, innermost last
        self.walls: list[int] = [-1]              # places of _WALLS elements, so a scope check takes constant time

    def last(self, name: str) -> int:
        at = self.at[name]
        return at[-1] if at else -1

    def in_scope(self, name: str, scope: str) -> int:
        """The place of the innermost open `name` if a tag in this scope can reach it, else -1."""
        places = self.at[name]
        if not places:
            return -1
        place = places[-1]
        if scope == "default":
            floor = self.walls[-1]
        elif scope == "table":
            floor = max(self.last("html"), self.last("table"), self.last("template"))
        elif scope == "button":
            floor = max(self.walls[-1], self.last("button"))
        else:  # list
            floor = max(self.walls[-1], self.last("ol"), self.last("ul"))
        return place if place >= floor else -1

    def push(self, name: str, hidden: bool) -> None:
        place = len(self.stack)
        self.at[name].append(place)
        if name in _WALLS:
            self.walls.append(place)
        self.skipping = hidden or self.skipping
        self.stack.append((name, self.skipping))

    def pop_to(self, place: int) -> None:
        stack, at, walls = self.stack, self.at, self.walls
        while len(stack) > place:
            at[stack.pop()[0]].pop()
            if walls[-1] == len(stack):
                walls.pop()
        self.skipping = bool(stack) and stack[-1][1]

    def start(self, name: str) -> None:
        """Ends what a start tag closes implicitly: <head> at body content, <p> at a block, a cell at a cell."""
        if name not in _HEAD_CONTENT and self.at["head"]:
            self.pop_to(self.at["head"][-1])
        for ends, scope in _IMPLIED.get(name, ()):
            for end in ends:
                place = self.in_scope(end, scope)
                if place >= 0:
                    self.pop_to(place)

    def end(self, name: str) -> bool | None:
        """Closes `name` and all open inside it; whether it was shown, None if there was nothing to close."""
        place = self.in_scope(name, _END_SCOPE.get(name, "default"))
        if place < 0:
            return None  # browsers ignore a stray end tag too
        shown = not self.stack[place][1]
        self.pop_to(place)
        return shown

    def text(self, chunk: str) -> None:
        """Text in <head> ends it, as in browsers: it belongs to the body."""
        if self.stack and self.stack[-1][0] == "head" and chunk.strip():
            self.pop_to(len(self.stack) - 1)


class _Writer:
    """Collects text into lines, each remembering its blockquote depth."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.line_depth = 0
        self.depth = 0
        self.pre = 0
        self.breaks = 0
        self.bare_bullet = False   # the line holds a list item's bullet and nothing else yet

    def text(self, chunk: str) -> None:
        if not self.current:
            self.line_depth = self.depth
        self.current.append(chunk)
        self.bare_bullet = self.bare_bullet and not chunk.strip()

    def bullet(self, marker: str) -> None:
        self.text(marker)
        self.bare_bullet = True

    def mark(self) -> tuple[int, int]:
        """A place in the text, to take what is written after it."""
        return self.breaks, len(self.current)

    def since(self, mark: tuple[int, int]) -> str:
        """What this line holds after `mark`: all of it if the line began later."""
        breaks, chunks = mark
        return "".join(self.current[chunks:] if breaks == self.breaks else self.current)

    def newline(self, blank: bool = False) -> None:
        self.breaks += 1
        self.bare_bullet = False
        self._row(self.line_depth if self.current else self.depth, "".join(self.current))
        self.current = []
        self.line_depth = self.depth
        if blank:
            self._row(self.depth, "")

    def _row(self, depth: int, line: str) -> None:
        # A run of empty rows at one depth reads as one; keeping one keeps a flood of <p> small.
        if line or not self.lines or self.lines[-1] != (depth, ""):
            self.lines.append((depth, line))

    def result(self) -> str:
        if self.current:
            self.newline()
        rows: list[tuple[int, str]] = []
        for depth, line in self.lines:
            if "\x00pre" in line:
                line = line.replace("\x00pre", "")
                line = line if line == "-- " else line.rstrip()
            else:
                stripped = _BLANKS.sub(" ", line).strip()
                # The signature separator keeps its space (RFC 3676 section 4.3): without it a mail client
                # and ingest's own quote stripper no longer know the signature.
                line = "-- " if stripped == "--" and line.lstrip().startswith("-- ") else stripped
            rows.append((depth, line))
        # The depth of the next non-blank row after each row, in one backward pass: looking ahead
        # from every blank row instead is quadratic in a mail of empty paragraphs.
        following: list[int | None] = [None] * len(rows)
        ahead = None
        for i in range(len(rows) - 1, -1, -1):
            following[i] = ahead
            if rows[i][1]:
                ahead = rows[i][0]
        out: list[str] = []
        last_depth = None
        for i, (depth, line) in enumerate(rows):
            if line:
                out.append("> " * depth + line)
                last_depth = depth
                continue
            # One blank line at most, none on top or bottom, none at a quote's edge.
            if last_depth == depth == following[i] and out and out[-1].strip("> "):
                out.append(("> " * depth).rstrip())
        return "\n".join(out)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document, with line structure and > quoting."""
    writer = _Writer()
    open_elements = _OpenElements()
    missing_ends: set[str] = set()    # raw text elements with no end tag further on
    link: list[tuple[str | None, tuple[int, int]]] = []  # the open <a>, if any: its href, where its text starts
    pre_styled: list[int] = []        # stack places of open elements styled white-space: pre and the like
    numbers: dict[int, int] = {}      # stack place of each open <ol>: the number its next item shows
    pos = 0

    def end_pre_styled() -> None:
        """Leaves the pre layout of each pre-styled element no longer open (closed, or ended by another tag)."""
        while pre_styled and pre_styled[-1] >= len(open_elements.stack):
            pre_styled.pop()
            writer.newline()
            writer.pre = max(0, writer.pre - 1)

    def end_link() -> None:
        href, start = link.pop()
        shown = re.sub(r"\[[^\]]*\]", "", writer.since(start)).strip()  # not image alts
        # Show where a link goes unless its text already says so. Text that
        # is an address of its own is no exception: "https://bank.example"
        # over a link to elsewhere is how phishing and trackers read.
        href = _url_as_followed(href) if href else href
        if href and re.match(r"(?i)https?:|mailto:", href) and shown and \
                href.split(":", 1)[1].strip("/").lower() not in shown.lower():
            # A bare mailto address reads as one; one with a query (?subject=) is a link only as a URI.
            bare = href.lower().startswith("mailto:") and "?" not in href
            writer.text(f" <{href[7:] if bare else href}>")

    def emit(chunk: str) -> None:
        open_elements.text(chunk)
        if open_elements.skipping:
            return
        chunk = html.unescape(chunk)
        if writer.pre:
            for i, piece in enumerate(chunk.split("\n")):
                if i:
                    writer.newline()
                if piece:
                    writer.text("\x00pre" + piece)
        else:
            writer.text(_WHITESPACE.sub(" ", chunk))

    def bullet() -> str:
        """The marker of the item just opened: its number in the nearest open list if that is an <ol>."""
        ordered, unordered = open_elements.last("ol"), open_elements.last("ul")
        if ordered < 0 or ordered < unordered:
            return "- "
        number = numbers.get(ordered, 1)
        numbers[ordered] = number + 1
        return f"{number}. "

    while match := _TOKEN.search(markup, pos):
        if match.start() > pos:
            emit(markup[pos:match.start()])
        pos = match.end()
        slash, name, attrs = match.group(1, 2, 3)
        if not name:
            continue  # comment, doctype, CDATA
        name, closing = name.lower(), slash == "/"
        self_closing = attrs.rstrip().endswith("/") or name in _VOID
        if closing:
            was_shown = open_elements.end(name)
            end_pre_styled()
            # A hidden element's own end tag is as invisible as its start tag; one that ends a
            # shown ancestor (and so the hidden element inside it) still shapes the text.
            if was_shown is False or (was_shown is None and open_elements.skipping):
                continue
        else:
            open_elements.start(name)
            end_pre_styled()
            if name in _RAW_TEXT and not self_closing:
                pos = _raw_text_end(markup, pos, name, missing_ends)
                continue
            if open_elements.skipping:
                if not self_closing:
                    open_elements.push(name, True)
                continue
            hidden = name in _SKIP or "style" in attrs and not self_closing and \
                bool(_HIDDEN.search(_attr(attrs, "style") or ""))
            if not self_closing:
                open_elements.push(name, hidden)
            if hidden:
                continue
            if name != "pre" and not self_closing and "style" in attrs and \
                    _PRE_STYLE.search(_attr(attrs, "style") or ""):
                pre_styled.append(len(open_elements.stack) - 1)
                writer.newline()
                writer.pre += 1
        if name == "blockquote":
            writer.newline()
            writer.depth = max(0, writer.depth + (-1 if closing else 1))
            writer.line_depth = writer.depth
            continue
        if name == "pre":
            writer.newline(blank=True)
            writer.pre = max(0, writer.pre + (-1 if closing else 1))
            continue
        if name == "a":
            if link:
                end_link()  # links do not nest: a new one ends the open one, as in browsers
            if not closing:
                link.append((_attr(attrs, "href"), writer.mark()))
            continue
        if name == "img" and not closing:
            alt = (_attr(attrs, "alt") or "").strip()
            if alt:
                writer.text(f"[{alt}]")
            continue
        if name == "ol" and not closing and not self_closing:
            numbers[len(open_elements.stack) - 1] = _list_start(attrs)
        # A block that opens a list item's content (<li><div>, <li><p>) starts on the bullet's line.
        if writer.bare_bullet and not closing and name not in ("li", "br", "hr"):
            continue
        if name in _PARAGRAPH:
            writer.newline(blank=True)
        elif name in _LINE:
            if name == "br" or writer.current:
                writer.newline()
            if name == "li" and not closing:
                writer.bullet(bullet())
        elif name in _CELL and closing:
            writer.text(" ")
    emit(markup[pos:])
    return writer.result()
