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

from ingest.html_style import (
    BLACK,
    DEFAULT_SIZE,
    LINK,
    PAGE,
    Colour,
    Look,
    StyleSheet,
    background,
    cascade,
    colour,
    declarations,
    font_size,
    length_px,
    looked,
    shorthand_font_size,
)

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
# Attributes that may hide an element, colour its text or show again what an ancestor hid; only then are they
# read one by one and its style's declarations parsed. Most tags of a mail have none of these words.
_MAY_HIDE_WORDS = ("none", "hidden", "collapse", "mso-hide", "/*", "\\", "font", "color", "background", "opacity",
                   "height", "width", "indent", "position", "clip", "transform", "visibility", "text=")
# Boxes max-height and height apply to (CSS 2.1 section 10.7): not inline boxes, and tables and their cells
# grow to hold their content, so a height of zero clips only a block.
_BLOCKS = {"div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dd", "dt", "li", "pre", "center",
           "section", "article", "header", "footer", "address", "form", "fieldset", "figure", "figcaption", "main",
           "nav", "aside", "blockquote", "details", "summary"}
_BLOCK_DISPLAYS = ("block", "inline-block", "flex", "grid", "list-item", "flow-root")
# Mail is at most about 800 CSS pixels wide: a box moved this far left or up is off the page.
_OFF_PAGE = -1000.0
_CLIP_RECT = re.compile(r"rect\(([^)]*)\)")
_INSET = re.compile(r"inset\(([^)]*)\)")
_SCALE = re.compile(r"scale(x|y|3d)?\(([^)]*)\)")
# Elements whose bgcolor or background attribute paints behind their content (HTML section 15.3.10, Tables).
# At most this many elements' attributes are remembered with how they look, so memory stays bounded.
_SEEN_STYLES = 4096
_BGCOLOR = {"body", "table", "thead", "tbody", "tfoot", "tr", "td", "th"}
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


def _attributes(attrs: str) -> dict[str, str]:
    """Every attribute by its name in lower case, each the first of its name (HTML drops the others)."""
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(attrs):
        name = match.group(1).lower()
        if name not in found:
            value = next((g for g in match.groups()[1:] if g is not None), "")
            found[name] = html.unescape(value) if "&" in value else value
    return found


def _may_hide(name: str, lowered: str, look: Look, sheet: StyleSheet) -> bool:
    """Whether attributes (in lower case) may hide an element, colour its text or show what an ancestor hid."""
    if "&" in lowered:
        lowered = html.unescape(lowered)   # "display&#58;none" is display:none
    # Substrings, being much cheaper than parsing: every tag of a mail comes here.
    if any(word in lowered for word in _MAY_HIDE_WORDS):
        return True
    if name == "a" and look.colour != LINK and "href" in lowered:
        return True
    return bool(sheet) and (sheet.applies_to(name) or "class" in lowered or "id" in lowered)


def _zero(value: str | None, size: float) -> bool:
    """Whether a length is zero."""
    return value is not None and length_px(value, size) == 0


def _clipped_away(name: str, found: dict[str, str], size: float) -> bool:
    """Whether a block's content is clipped to a box of no height or width (CSS Overflow 3, overflow: hidden)."""
    overflow = found.get("overflow", "").split()
    across = found.get("overflow-x", overflow[0] if overflow else "")
    down = found.get("overflow-y", overflow[-1] if overflow else "")
    clips_down, clips_across = down in ("hidden", "clip"), across in ("hidden", "clip")
    if not (clips_down and (_zero(found.get("max-height"), size) or _zero(found.get("height"), size)) or
            clips_across and (_zero(found.get("max-width"), size) or _zero(found.get("width"), size))):
        return False
    display = found.get("display", "")
    return display in _BLOCK_DISPLAYS or not display and name in _BLOCKS


def _off_page(found: dict[str, str], size: float) -> bool:
    """Whether a box is moved or clipped out of sight: far left or up, clipped to nothing, or scaled to nothing."""
    if not ("text-indent" in found or "position" in found or "clip-path" in found or "transform" in found):
        return False
    indent = length_px(found.get("text-indent", ""), size)
    if indent is not None and indent <= _OFF_PAGE:
        return True     # the classic image replacement: the first line, mostly all of it, starts off the page
    position = found.get("position", "static")
    if position in ("absolute", "fixed", "relative", "sticky"):
        for side in ("left", "top"):
            offset = length_px(found.get(side, ""), size)
            if offset is not None and offset <= _OFF_PAGE:
                return True
    # clip applies to absolutely positioned boxes only (CSS Masking 1, section 6.1): rect(top right bottom left).
    rect = _CLIP_RECT.search(found.get("clip", "")) if position in ("absolute", "fixed") else None
    if rect:
        edges = [length_px(edge, size) for edge in rect.group(1).replace(",", " ").split()]
        if len(edges) == 4 and None not in edges:
            top, right, bottom, left = edges   # type: ignore[misc]
            if right - left <= 1 or bottom - top <= 1:
                return True
    inset = _INSET.search(found.get("clip-path", ""))
    if inset and _inset_covers(inset.group(1)):
        return True
    for axis, arguments in _SCALE.findall(found.get("transform", "")):
        factors = arguments.replace(",", " ").split()
        if any(_zero(factor, size) for factor in (factors[:2] if axis == "3d" else factors)):
            return True
    return False


def _inset_covers(arguments: str) -> bool:
    """Whether clip-path: inset() takes in half or more from opposite sides (percentages only: size not known)."""
    values = arguments.split(" round ")[0].split()
    if not values or not all(v.endswith("%") or v == "0" for v in values):
        return False
    top, right, bottom, left = _four(values)
    number = [float(v.rstrip("%")) for v in (top, right, bottom, left)]
    return number[0] + number[2] >= 100 or number[1] + number[3] >= 100


def _four(values: list[str]) -> list[str]:
    """A shorthand's one to four values as top, right, bottom, left (CSS Backgrounds 3, margin-like)."""
    top = values[0]
    right = values[1] if len(values) > 1 else top
    bottom = values[2] if len(values) > 2 else top
    left = values[3] if len(values) > 3 else right
    return [top, right, bottom, left]


def _hints(name: str, attributes: dict[str, str], found: dict[str, str]) -> None:
    """Adds the colours an element's attributes ask for where its CSS says none (HTML section 15.3, hints)."""
    if name in _BGCOLOR:
        if "bgcolor" in attributes and "background" not in found and "background-color" not in found:
            found["background-color"] = attributes["bgcolor"].strip().lower() or "transparent"
        if attributes.get("background") and "background-image" not in found:
            found["background-image"] = "url()"
    value = attributes.get("color") if name == "font" else attributes.get("text") if name == "body" else None
    if value and "color" not in found:
        found["color"] = value.strip().lower()


def _opacity(value: str | None) -> float:
    """An opacity as a number from 0 to 1; 1 if none or not known."""
    if not value:
        return 1.0
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        return 1.0
    return min(max(number, 0.0), 1.0)


def _text_colour(value: str | None, name: str, attributes: dict[str, str], parent: Look) -> Colour | None:
    """An element's text colour: a link's own unless it sets one (CSS 2.1, appendix D), else its parent's."""
    inherited = LINK if name == "a" and "href" in attributes else parent.colour
    if value is None:
        return inherited
    if value in ("inherit", "currentcolor", "unset", "revert"):
        return parent.colour
    return BLACK if value == "initial" else colour(value)


def _font_size(found: dict[str, str], parent: float) -> float:
    """An element's font size in CSS pixels: its font-size, the size in its font shorthand, or its parent's."""
    value = found.get("font-size")
    if value is not None:
        size = font_size(value, parent)
    elif "font" in found:
        size = shorthand_font_size(found["font"], parent)
    else:
        return parent
    return DEFAULT_SIZE if size is None else size


def _style_hides(name: str, attrs: str, lowered: str, look: Look, sheet: StyleSheet) -> tuple[bool, Look]:
    """Whether an element is not rendered at all, and how its text looks (whether it is seen)."""
    if not _may_hide(name, lowered, look, sheet):
        return False, look
    attributes = _attributes(attrs)
    style = attributes.get("style")
    inline = declarations(style) if style else []
    ruled = sheet.matching(name, attributes.get("id"), attributes.get("class")) if sheet else []
    found = cascade(ruled, inline) if ruled else cascade(inline)
    display = found.get("display", "")
    # The hidden attribute is display: none in the user agent's style sheet (HTML section 15.3.1, Hidden
    # elements), which an inline display overrides; hidden=until-found hides the content all the same.
    if display == "none" or not display and "hidden" in attributes or \
            found.get("mso-hide") == "all" or _opacity(found.get("opacity")) == 0:
        return True, look
    size = _font_size(found, look.size)
    if _clipped_away(name, found, size) or _off_page(found, size):
        return True, look
    _hints(name, attributes, found)
    # visibility is inherited: a descendant that sets it again shows its text (CSS Display 3, visibility).
    visibility = found.get("visibility")
    invisible = visibility in ("hidden", "collapse") or look.invisible and visibility != "visible"
    return False, looked(invisible, size, _text_colour(found.get("color"), name, attributes, look),
                         look.opacity * _opacity(found.get("opacity")), background(found, look.background),
                         not sheet.colours_not_known)


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


def _raw_text_end(markup: str, pos: int, name: str, missing: set[str]) -> tuple[int, int]:
    """Where the raw text content of `name` opened just before `pos` stops, and where its end tag stops."""
    found = None if name in missing else _RAW_END[name].search(markup, pos)
    if not found:
        missing.add(name)  # none further on either: searching again would make repeats quadratic
        if name == "title":
            # Browsers would make the rest of the document the title; a mail is better off losing
            # only the title, which never holds markup.
            end = markup.find("<", pos)
            end = len(markup) if end < 0 else end
            return end, end
        return len(markup), len(markup)
    return found.start(), found.end()


def _read_style(sheet: StyleSheet, css: str, attrs: str, open_elements: _OpenElements) -> None:
    """Adds a <style> element's rules to the mail's sheet, and what they say of the page to the open root."""
    # A style sheet for some media only (HTML section 4.2.6, the media attribute) may or may not apply.
    media = (_attr(attrs, "media") or "").strip().lower() if "media" in attrs.lower() else ""
    sheet.add(css, conditional=media not in ("", "all", "screen"))
    if sheet.applies_to("html") or sheet.applies_to("body"):
        look = PAGE
        for name in ("html", "body"):
            hidden, seen = _style_hides(name, "", "", look, sheet)
            look = look if hidden else seen
        open_elements.restyle_root(look)


class _OpenElements:
    """HTML's stack of open elements, kept just well enough to know where hidden content ends."""

    def __init__(self) -> None:
        # (name, whether it or an ancestor is hidden, how its text looks)
        self.stack: list[tuple[str, bool, Look]] = []
        self.skipping = False                     # the innermost open element is hidden
        self.root = PAGE                          # how text outside any element looks
        self.look = PAGE                          # how the innermost open element's text looks
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

    def push(self, name: str, hidden: bool, look: Look) -> None:
        place = len(self.stack)
        self.at[name].append(place)
        if name in _WALLS:
            self.walls.append(place)
        self.skipping = hidden or self.skipping
        self.look = look
        self.stack.append((name, self.skipping, look))

    def pop_to(self, place: int) -> None:
        stack, at, walls = self.stack, self.at, self.walls
        while len(stack) > place:
            at[stack.pop()[0]].pop()
            if walls[-1] == len(stack):
                walls.pop()
        self.skipping = bool(stack) and stack[-1][1]
        self.look = stack[-1][2] if stack else self.root

    def restyle_root(self, look: Look) -> None:
        """Gives the page and its open <html> and <head> the look a style sheet gives <html> and <body>.

        A sheet met inside <body> (forwarded or embedded HTML) may paint the page behind elements already
        open, whose looks were worked out before it: from then on their colours are not known, and colour
        hides none of their text ("<body><style>body{background:#000}</style><p style=color:#fff>").
        """
        self.root = look
        in_head = True
        for place, (name, hidden, old) in enumerate(self.stack):
            in_head = in_head and name in ("html", "head")
            self.stack[place] = (name, hidden, look if in_head else looked(
                old.invisible, old.size, None, old.opacity, None, colours_known=False))
        self.look = self.stack[-1][2] if self.stack else look

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
    sheet = StyleSheet()              # the rules of the mail's <style> elements read so far
    # (name, attributes, the parent's look): whether that element is hidden, and how its text looks
    seen_styles: dict[tuple[str, str, Look], tuple[bool, Look]] = {}
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
        if open_elements.skipping or open_elements.look.unseen:
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
                content_end, end = _raw_text_end(markup, pos, name, missing_ends)
                # Mail clients apply a <style> wherever it stands (Gmail, Outlook and Apple Mail read them);
                # a <template>'s content is never part of the page.
                if name == "style" and not open_elements.at["template"]:
                    _read_style(sheet, markup[pos:content_end], attrs, open_elements)
                    seen_styles.clear()
                pos = end
                continue
            if open_elements.skipping:
                if not self_closing:
                    open_elements.push(name, True, open_elements.look)
                continue
            lowered = attrs.lower()
            if name in _SKIP or not attrs and not sheet:
                hidden, look = name in _SKIP, open_elements.look
            else:
                # Mail repeats the same attributes on element after element: each is worked out once.
                key = (name, attrs, open_elements.look)
                styled = seen_styles.get(key)
                if styled is None:
                    if len(seen_styles) >= _SEEN_STYLES:
                        seen_styles.clear()
                    styled = seen_styles[key] = _style_hides(name, attrs, lowered, open_elements.look, sheet)
                hidden, look = styled
            if not self_closing:
                open_elements.push(name, hidden, look)
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
            # A tiny font size or a text colour leaves an image as it is; visibility: hidden hides it.
            if alt and not look.invisible:
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
                writer.bullet("" if open_elements.look.unseen else marker)
        elif name in _CELL and (closing or writer.current):
            # A cell's end tag may be left out (HTML section 13.1.2.4, optional tags): the next cell's
            # start tag ends it, and its text must not run into the one before.
            writer.text(" ")
    emit(markup[pos:])
    text = writer.result()
    return _UNKNOWN_NUMBER.sub(count_down, text) if counting_down else text
