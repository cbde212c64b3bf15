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
# Attributes that may hide an element or its text; only then are they read one by one and its style's
# declarations parsed. Zero is a number of zeros with or without a unit ("0", "0px", ".0em"); "0.75em" is not.
_ZERO = r"[+-]?(?:0+\.?0*|\.0+)(?:[a-z]+|%)?"
_MAY_HIDE = re.compile(r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)|mso-hide\s*:\s*all"
                       r"|(?:opacity|height)\s*:\s*{0}(?![\w.%])|(?<![\w-])font(?:-size)?\s*:[^;]*?(?<![\w.]){0}(?![\w.%])"
                       r"|(?<![\w-])hidden(?![\w-])|/\*".format(_ZERO))
_IS_ZERO = re.compile(_ZERO + r"\Z")
# Why an element's text is unseen, as bits: visibility hidden, font size zero. Both are inherited and a
# descendant can set them again, so its text shows once more.
_NO_VISIBILITY, _NO_SIZE = 1, 2
# font-size values relative to the parent's size: zero stays zero (CSS Fonts 4, font-size).
_RELATIVE_SIZE = re.compile(r"[+-]?[\d.]+(?:em|ex|ch|%)\Z|smaller|larger|inherit|unset|revert", re.IGNORECASE)
# Boxes max-height and height apply to (CSS 2.1 section 10.7): not inline boxes, and tables and their cells
# grow to hold their content, so a height of zero clips only a block.
_BLOCKS = {"div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dd", "dt", "li", "pre", "center",
           "section", "article", "header", "footer", "address", "form", "fieldset", "figure", "figcaption", "main",
           "nav", "aside", "blockquote", "details", "summary"}
# An attribute as HTML's tokenizer reads one (before, in and after attribute name and value states): a quoted
# value is one value, so "title='style=display:none'" is a title and no style.
_ATTRIBUTE = re.compile(r"""([^\s/>=][^\s/>=]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_INTEGER = re.compile(r"[\t\n\f\r ]*([+-]?[0-9]+)")
# Counter styles an ordered list can take: its type attribute (HTML section 15.3.8, Lists, case-sensitive)
# or an inline list-style (CSS Counter Styles 3, section 6.1).
_LIST_TYPES = {"1": "1", "a": "a", "A": "A", "i": "i", "I": "I"}
_LIST_STYLE = re.compile(r"list-style(?:-type)?\s*:[^;]*?\b(decimal|lower-alpha|lower-latin|upper-alpha|upper-latin"
                         r"|lower-roman|upper-roman)\b", re.IGNORECASE)
_STYLE_TYPES = {"decimal": "1", "lower-alpha": "a", "lower-latin": "a", "upper-alpha": "A", "upper-latin": "A",
                "lower-roman": "i", "upper-roman": "I"}
_ROMAN = ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
          (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
# A number not yet known when its item is written: a reversed list without start counts down from its
# number of items (HTML, the ol element), known only at its end.
_UNKNOWN_NUMBER = re.compile("\x00#([0-9]+):([0-9]+):(.)\x00")
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


def _integer(value: str | None) -> int | None:
    """An integer as HTML reads one (rules for parsing integers): spaces, a sign, digits; the rest ignored."""
    match = _INTEGER.match(value) if value else None
    return int(match.group(1)) if match else None


def _attr(attrs: str, name: str) -> str | None:
    """The value of the first attribute called `name` ("" if it has none); None if there is no such attribute."""
    for match in _ATTRIBUTE.finditer(attrs):
        if match.group(1).lower() == name:
            value = next((g for g in match.groups()[1:] if g is not None), "")
            return html.unescape(value) if "&" in value else value
    return None


def _declarations(style: str) -> dict[str, str]:
    """An inline style's properties and their values in lower case: the last wins, an !important one over others."""
    if "/*" in style:
        style = re.sub(r"/\*.*?(?:\*/|\Z)", "", style, flags=re.DOTALL)
    found: dict[str, str] = {}
    important: set[str] = set()
    for declaration in style.lower().split(";"):
        name, colon, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            continue
        if value.endswith("important") and "!" in value:
            value = value[:value.rindex("!")].strip()
            important.add(name)
        elif name in important:
            continue
        found[name] = value
    return found


def _font_size_zero(value: str, parent: bool) -> bool:
    """Whether a font-size (or the size in a font shorthand) leaves text of no size; relative ones follow `parent`."""
    for word in value.replace("/", " / ").split():
        if word == "/":
            break     # a line height follows the size
        if _IS_ZERO.match(word):
            return True
        if _RELATIVE_SIZE.match(word):
            return parent
        if word[0] in "0123456789." and not word.isdigit() or word.endswith("-small") or word.endswith("-large") or \
                word in ("small", "medium", "large", "initial", "math"):
            return False   # an absolute size (a bare number is a font-weight)
    return parent


def _may_hide(lowered: str, invisible: int) -> bool:
    """Whether attributes (in lower case) may hide an element or its text, or show again what an ancestor hid."""
    if "&" in lowered:
        lowered = html.unescape(lowered)   # "display&#58;none" is display:none
    if invisible and ("visibility" in lowered or "font" in lowered):
        return True
    # Substrings first, being much cheaper than the expression: every tag of a mail comes here.
    if "none" in lowered or "hidden" in lowered or "collapse" in lowered or "mso-hide" in lowered or \
            "/*" in lowered or "0" in lowered and ("font" in lowered or "height" in lowered or "opacity" in lowered):
        return bool(_MAY_HIDE.search(lowered))
    return False


def _style_hides(name: str, attrs: str, lowered: str, invisible: int) -> tuple[bool, int]:
    """Whether an element is not rendered at all, and why its text is unseen (_NO_VISIBILITY, _NO_SIZE bits)."""
    if not _may_hide(lowered, invisible):
        return False, invisible
    style = _attr(attrs, "style")
    hidden_attribute = _attr(attrs, "hidden") is not None
    found = _declarations(style or "")
    display = found.get("display", "")
    # The hidden attribute is display: none in the user agent's style sheet (HTML section 15.3.1, Hidden
    # elements), which an inline display overrides; hidden=until-found hides the content all the same.
    if display == "none" or hidden_attribute and not display or found.get("mso-hide") == "all" or \
            _IS_ZERO.match(found.get("opacity", "1")):
        return True, invisible
    # Content clipped to a box of no height is not seen (CSS Overflow 3, overflow: hidden and clip).
    clips = found.get("overflow", found.get("overflow-y", "")) in ("hidden", "clip")
    if clips and (_IS_ZERO.match(found.get("max-height", "1")) or _IS_ZERO.match(found.get("height", "1"))):
        if display in ("block", "inline-block", "flex", "grid", "list-item", "flow-root") or \
                not display and name in _BLOCKS:
            return True, invisible
    # Both are inherited: a descendant that sets them again shows its text (CSS Display 3, visibility).
    visibility = found.get("visibility")
    if visibility in ("hidden", "collapse"):
        invisible |= _NO_VISIBILITY
    elif visibility == "visible":
        invisible &= ~_NO_VISIBILITY
    size = found.get("font-size", found.get("font"))
    if size is not None:
        zero = _font_size_zero(size, bool(invisible & _NO_SIZE))
        invisible = invisible | _NO_SIZE if zero else invisible & ~_NO_SIZE
    return False, invisible


def _counter(number: int, kind: str) -> str:
    """`number` as a list marker of counter style `kind`: 1, a, A, i or I, with decimal outside their range."""
    if kind in "aA" and number > 0:
        letters = ""
        while number:
            number, digit = divmod(number - 1, 26)
            letters = chr(ord(kind) + digit) + letters
        return letters
    if kind in "iI" and 0 < number < 4000:
        roman = ""
        for value, numeral in _ROMAN:
            count, number = divmod(number, value)
            roman += numeral * count
        return roman if kind == "I" else roman.lower()
    return str(number)


class _OrderedList:
    """The numbering state of an open <ol>."""

    __slots__ = ("next", "step", "kind", "items")

    def __init__(self, attrs: str) -> None:
        reversed_ = "reversed" in attrs.lower() and _attr(attrs, "reversed") is not None
        self.step = -1 if reversed_ else 1
        start = _integer(_attr(attrs, "start")) if "start" in attrs.lower() else None
        self.next: int | None = start if start is not None else None if reversed_ else 1
        self.kind = _list_type(attrs, "1")
        self.items = 0


def _list_type(attrs: str, kind: str) -> str:
    """The counter style an <ol> or <li> asks for, else `kind`: an inline list-style wins over a type attribute."""
    if not attrs:
        return kind
    lowered = attrs.lower()
    if "list-style" in lowered:
        found = _LIST_STYLE.search(_attr(attrs, "style") or "")
        if found:
            return _STYLE_TYPES[found.group(1).lower()]
    if "type" in lowered:
        return _LIST_TYPES.get((_attr(attrs, "type") or "").strip(), kind)
    return kind


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
        # (name, whether it or an ancestor is hidden, why its text is unseen: _NO_VISIBILITY, _NO_SIZE bits)
        self.stack: list[tuple[str, bool, int]] = []
        self.skipping = False                     # the innermost open element is hidden
        self.invisible = 0                        # why the innermost open element's text is unseen, if it is
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

    def push(self, name: str, hidden: bool, invisible: int = 0) -> None:
        place = len(self.stack)
        self.at[name].append(place)
        if name in _WALLS:
            self.walls.append(place)
        self.skipping = hidden or self.skipping
        self.invisible = invisible
        self.stack.append((name, self.skipping, invisible))

    def pop_to(self, place: int) -> None:
        stack, at, walls = self.stack, self.at, self.walls
        while len(stack) > place:
            at[stack.pop()[0]].pop()
            if walls[-1] == len(stack):
                walls.pop()
        self.skipping = bool(stack) and stack[-1][1]
        self.invisible = stack[-1][2] if stack else 0

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
    """Collects text into lines, each remembering its blockquote depth.

    Each row is made its final line as soon as it ends, and lines are joined in blocks: keeping every row
    as a (depth, text) tuple to the end took about 50 bytes of markup's worth each, and a 16 MB mail of
    `<p>a</p>` peaked at 840 MB.
    """

    _BLOCK = 4096   # lines joined into one string at a time

    def __init__(self) -> None:
        self.current: list[str] = []
        self.line_depth = 0
        self.depth = 0
        self.pre = 0
        self.breaks = 0
        self.bare_bullet = False   # the line holds a list item's bullet and nothing else yet
        self.out: list[str] = []          # the lines written since the last block
        self.blocks: list[str] = []       # earlier lines, joined
        self.last_depth: int | None = None   # the depth of the last line written, None before the first
        self.last_shown = False           # whether that line holds more than quote marks
        self.blank_between = False        # an empty row at last_depth came after that line

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
        """Writes a finished row: its text, or for an empty row, a blank line if text at its depth follows."""
        line = _finished(line) if line else line
        if not line:
            # One blank line at most, none on top or bottom, none at a quote's edge: it is written before the
            # next line, if that one has the same depth.
            self.blank_between = self.blank_between or depth == self.last_depth
            return
        if self.blank_between and depth == self.last_depth and self.last_shown:
            self._write(("> " * depth).rstrip())
        self._write("> " * depth + line)
        self.last_depth, self.last_shown, self.blank_between = depth, bool(line.strip("> ")), False

    def _write(self, line: str) -> None:
        out = self.out
        out.append(line)
        if len(out) >= self._BLOCK:
            self.blocks.append("\n".join(out))
            out.clear()

    def result(self) -> str:
        if self.current:
            self.newline()
        if self.out:
            self.blocks.append("\n".join(self.out))
            self.out.clear()
        return "\n".join(self.blocks)


def _finished(line: str) -> str:
    """A row's text as shown: blanks squeezed and trimmed, except in preformatted text."""
    if "\x00pre" in line:
        line = line.replace("\x00pre", "")
        return line if line == "-- " else line.rstrip()
    stripped = _squeezed(line).strip()
    # The signature separator keeps its space (RFC 3676 section 4.3): without it a mail client
    # and ingest's own quote stripper no longer know the signature.
    return "-- " if stripped == "--" and line.lstrip().startswith("-- ") else stripped


# Long text is worked on in pieces of about this many characters: re.sub and html.unescape keep a list of all
# their matches, and a 4 MB text of words took 45 MB so, where pieces take a few times the text.
_PIECE = 1 << 16
_NOT_BLANK = re.compile(r"[^ \t\u00a0]")


def _squeezed(line: str) -> str:
    """Each run of _BLANKS in `line` made one space, a piece at a time; no run is cut between pieces."""
    if len(line) <= _PIECE:
        return _BLANKS.sub(" ", line)
    pieces = []
    start = 0
    while start < len(line):
        after = _NOT_BLANK.search(line, min(start + _PIECE, len(line)))
        end = after.start() if after else len(line)
        pieces.append(_BLANKS.sub(" ", line[start:end]))
        start = end
    return "".join(pieces)


def _pieces(chunk: str) -> list[str]:
    """`chunk` in pieces of about _PIECE characters, cut at a space or before a "&" so no reference is cut."""
    pieces = []
    start = 0
    while len(chunk) - start > _PIECE:
        end = start + _PIECE
        # A character reference holds no whitespace; only a text without any is cut before its last "&".
        cut = max(chunk.rfind(" ", start, end), chunk.rfind("\n", start, end)) + 1 or chunk.rfind("&", start, end)
        end = cut if cut > start else end
        pieces.append(chunk[start:end])
        start = end
    pieces.append(chunk[start:])
    return pieces


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document, with line structure and > quoting."""
    if "\x00" in markup:
        # Ignored in text, as in browsers ("in body" insertion mode); the text's own markers use it.
        markup = markup.replace("\x00", "")
    writer = _Writer()
    open_elements = _OpenElements()
    missing_ends: set[str] = set()    # raw text elements with no end tag further on
    link: list[tuple[str | None, tuple[int, int]]] = []  # the open <a>, if any: its href, where its text starts
    pre_styled: list[int] = []        # stack places of open elements styled white-space: pre and the like
    numbers: dict[int, _OrderedList] = {}   # stack place of each open <ol>: how it numbers its items
    counting_down: list[_OrderedList] = []   # reversed lists without start, whose first number is their size
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

    def emit(text: str) -> None:
        open_elements.text(text)
        if open_elements.skipping or open_elements.invisible:
            return
        for piece in _pieces(text) if len(text) > _PIECE else (text,):
            emit_piece(piece)

    def emit_piece(chunk: str) -> None:
        chunk = html.unescape(chunk)
        if writer.pre:
            for i, piece in enumerate(chunk.split("\n")):
                if i:
                    writer.newline()
                if piece:
                    writer.text("\x00pre" + piece)
        else:
            writer.text(_WHITESPACE.sub(" ", chunk))

    def bullet(attrs: str) -> str:
        """The marker of the item just opened: its number in the nearest open list if that is an <ol>."""
        ordered, unordered = open_elements.last("ol"), open_elements.last("ul")
        if ordered < 0 or ordered < unordered:
            return "- "
        numbering = numbers.get(ordered) or numbers.setdefault(ordered, _OrderedList(""))
        kind = _list_type(attrs, numbering.kind)
        # An item's value sets its own number and so those after it (HTML section 4.4.8, ordinal value).
        number = _integer(_attr(attrs, "value")) if "value" in attrs.lower() else None
        if number is None and numbering.next is None:
            if not numbering.items:
                counting_down.append(numbering)
            numbering.items += 1
            return f"\x00#{len(counting_down) - 1}:{numbering.items - 1}:{kind}\x00. "
        number = numbering.next if number is None else number
        numbering.next = number + numbering.step
        numbering.items += 1
        return f"{_counter(number, kind)}. "

    def count_down(found: re.Match[str]) -> str:
        """The number of an item of a reversed list without start, now that the list's size is known."""
        numbering = counting_down[int(found.group(1))]
        return _counter(numbering.items - int(found.group(2)), found.group(3))

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
            lowered = attrs.lower()
            hidden, invisible = (name in _SKIP, open_elements.invisible) if name in _SKIP or not attrs else \
                _style_hides(name, attrs, lowered, open_elements.invisible)
            if not self_closing:
                open_elements.push(name, hidden, invisible)
            if hidden:
                continue
            if name != "pre" and not self_closing and "white-space" in lowered and \
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
            # A zero font size leaves an image its size; visibility: hidden hides it.
            if alt and not invisible & _NO_VISIBILITY:
                writer.text(f"[{alt}]")
            continue
        if name == "ol" and not closing and not self_closing:
            numbers[len(open_elements.stack) - 1] = _OrderedList(attrs)
        # A block that opens a list item's content (<li><div>, <li><p>) starts on the bullet's line.
        if writer.bare_bullet and not closing and name not in ("li", "br", "hr"):
            continue
        if name in _PARAGRAPH:
            writer.newline(blank=True)
        elif name in _LINE:
            if name == "br" or writer.current:
                writer.newline()
            if name == "li" and not closing:
                marker = bullet(attrs)
                # The marker takes the item's font size and visibility (CSS Lists 3, ::marker).
                writer.bullet("" if open_elements.invisible else marker)
        elif name in _CELL and (closing or writer.current):
            # A cell's end tag may be left out (HTML section 13.1.2.4, optional tags): the next cell's
            # start tag ends it, and its text must not run into the one before.
            writer.text(" ")
    emit(markup[pos:])
    text = writer.result()
    return _UNKNOWN_NUMBER.sub(count_down, text) if counting_down else text
