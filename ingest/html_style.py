"""What a mail's CSS says about whether a reader sees an element's text: inline styles and its own <style> rules.

Read the way browsers read CSS (CSS Syntax 3): comments separate tokens, escapes are code points, keywords
are case-insensitive. Only what decides whether text is seen is kept: whether an element is laid out, its
visibility, font size, colours and the background behind it.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

# Comments (a token separator, CSS Syntax 3 section 4.3.2), strings (whose ";" and ":" separate nothing) and
# escapes (section 4.3.7: a hex code point with one optional space after it, or the character itself).
_TOKENS = re.compile(r"""/\*.*?(?:\*/|\Z)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?"""
                     r"|\\(?:([0-9a-fA-F]{1,6})[ \t\n\r\f]?|(.))", re.DOTALL)
# An escaped character is part of a name or value, never structure: an escaped ";" ends no declaration and an
# escaped "." starts no class. Such characters become U+FFFD, which matches no keyword.
_STRUCTURE = frozenset(";:{}.#,>+~[]()*!@\"'\\/ \t\n\r\f")


def _plain_token(found: re.Match[str]) -> str:
    """A comment as a space, a string as an empty one, an escape as its character."""
    token = found.group(0)
    if token[0] == "/":
        return " "
    if token[0] in "\"'":
        return '""'
    code, char = found.groups()
    if code is not None:
        point = int(code, 16)
        char = chr(point) if 0 < point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF else "\ufffd"
    return "" if char == "\n" else "\ufffd" if char in _STRUCTURE else char


def plain_css(text: str) -> str:
    """CSS with its comments, strings and escapes resolved, so keywords read as the browser reads them."""
    if "\\" in text or "/*" in text or '"' in text or "'" in text:
        return _TOKENS.sub(_plain_token, text)
    return text


# The properties that decide whether text is seen; a style sheet keeps no others.
SEEN_PROPERTIES = frozenset({
    "display", "visibility", "opacity", "mso-hide", "font-size", "font", "color", "background", "background-color",
    "background-image", "height", "max-height", "width", "max-width", "overflow", "overflow-x", "overflow-y",
    "text-indent", "position", "left", "top", "clip", "clip-path", "transform"})
# A value standing for "not known": a rule that may or may not apply set it (see StyleSheet).
UNKNOWN = "\ufffd"


def declarations(style: str) -> list[tuple[str, str, bool]]:
    """An inline style's or a rule's declarations: (property, value in lower case, whether !important)."""
    found = []
    for declaration in plain_css(style).lower().split(";"):
        name, colon, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or name not in SEEN_PROPERTIES:
            continue
        important = False
        if value.endswith("important") and "!" in value:
            bang = value.rindex("!")
            if value[bang + 1:].strip() == "important":
                value, important = value[:bang].strip(), True
        found.append((name, value, important))
    return found


def cascade(*lists: list[tuple[str, str, bool]]) -> dict[str, str]:
    """Each property's value after the cascade: the last wins, an !important one over any that is not."""
    found: dict[str, str] = {}
    important: set[str] = set()
    for declared in lists:
        for name, value, is_important in declared:
            if is_important:
                important.add(name)
            elif name in important:
                continue
            found[name] = value
    return found


# ------------------------------------------------------------------------------------------------ lengths

_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)([a-z]*|%)\Z")
# CSS Values 4, section 6.2 (absolute lengths), in CSS pixels.
_PX = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "q": 96 / 101.6}
DEFAULT_SIZE = 16.0     # "medium", every mail client's default
# CSS Fonts 4, section 2.5 (absolute-size keywords).
_SIZE_KEYWORDS = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0,
                  "x-large": 24.0, "xx-large": 32.0, "xxx-large": 48.0, "initial": 16.0, "math": 16.0}


def length_px(value: str, size: float) -> float | None:
    """A length in CSS pixels (em and ex in `size`, the font size); None for a percentage or what is not known."""
    found = _LENGTH.match(value)
    if not found:
        return None
    number, unit = float(found.group(1)), found.group(2)
    if number == 0:
        return 0.0
    if unit in _PX:
        return number * _PX[unit]
    if unit == "em":
        return number * size
    if unit in ("ex", "ch"):
        return number * size / 2
    if unit == "rem":
        return number * DEFAULT_SIZE
    return None


def font_size(value: str, parent: float) -> float | None:
    """A font size in CSS pixels; relative ones are of `parent` (CSS Fonts 4, font-size); None if it is none."""
    if value in _SIZE_KEYWORDS:
        return _SIZE_KEYWORDS[value]
    if value in ("inherit", "unset", "revert", "revert-layer"):
        return parent
    if value in ("smaller", "larger"):
        return parent / 1.2 if value == "smaller" else parent * 1.2
    if value.endswith("%"):
        found = _LENGTH.match(value)
        return float(found.group(1)) * parent / 100 if found else None
    # A bare number other than zero is no length (quirks mode's unitless pixels are not read).
    bare = value.isdigit() and value.strip("0")
    return length_px(value, parent) if value[:1] in "+-.0123456789" and not bare else None


def shorthand_font_size(value: str, parent: float) -> float | None:
    """The size in a font shorthand: the first word that is a size, before any "/" and line height."""
    for word in value.replace("/", " / ").split():
        if word == "/":
            return None
        size = font_size(word, parent)
        if size is not None:
            return size
    return parent if value in ("inherit", "unset", "revert") else None


# ------------------------------------------------------------------------------------------------ colours

Colour = tuple[float, float, float, float]   # red, green, blue 0-255 and alpha 0-1
BLACK: Colour = (0.0, 0.0, 0.0, 1.0)
WHITE: Colour = (255.0, 255.0, 255.0, 1.0)
LINK: Colour = (0.0, 0.0, 238.0, 1.0)        # a link's colour in every browser's own style sheet
# The named colours that mail writes and those near white, where hidden text hides (CSS Color 4, section 6.1);
# any other name is a colour not known, and no text is judged by it.
_NAMED = {"black": "000000", "white": "ffffff", "red": "ff0000", "green": "008000", "blue": "0000ff",
          "yellow": "ffff00", "gray": "808080", "grey": "808080", "silver": "c0c0c0", "navy": "000080",
          "maroon": "800000", "purple": "800080", "teal": "008080", "olive": "808000", "lime": "00ff00",
          "aqua": "00ffff", "fuchsia": "ff00ff", "orange": "ffa500", "whitesmoke": "f5f5f5", "snow": "fffafa",
          "ivory": "fffff0", "ghostwhite": "f8f8ff", "azure": "f0ffff", "mintcream": "f5fffa",
          "floralwhite": "fffaf0", "seashell": "fff5ee", "aliceblue": "f0f8ff", "honeydew": "f0fff0",
          "lavenderblush": "fff0f5", "linen": "faf0e6", "oldlace": "fdf5e6", "beige": "f5f5dc",
          "cornsilk": "fff8dc", "lightyellow": "ffffe0", "gainsboro": "dcdcdc", "lightgray": "d3d3d3",
          "lightgrey": "d3d3d3", "darkgray": "a9a9a9", "darkgrey": "a9a9a9", "dimgray": "696969", "dimgrey": "696969"}
_WORDS = re.compile(r"[\w-]+\([^()]*\)|#?[\w-]+")     # a shorthand's values, a function's arguments kept
_FUNCTION = re.compile(r"(rgba?|hsla?)\(([^()]*)\)\Z")


_HEX_DIGITS = frozenset("0123456789abcdef")


def _hex(digits: str) -> Colour | None:
    """#rgb, #rgba, #rrggbb or #rrggbbaa."""
    if len(digits) in (3, 4):
        digits = "".join(d * 2 for d in digits)
    if len(digits) not in (6, 8) or not _HEX_DIGITS.issuperset(digits):
        return None
    alpha = int(digits[6:], 16) / 255 if len(digits) == 8 else 1.0
    return float(int(digits[0:2], 16)), float(int(digits[2:4], 16)), float(int(digits[4:6], 16)), alpha


def _number(text: str, scale: float) -> float | None:
    """A number, or a percentage of `scale`."""
    try:
        return float(text[:-1]) * scale / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


def _hsl(hue: float, saturation: float, lightness: float) -> tuple[float, float, float]:
    """HSL as sRGB 0-255 (CSS Color 4, section 7.1)."""
    def channel(n: int) -> float:
        k = (n + hue / 30) % 12
        return 255 * (lightness - saturation * min(lightness, 1 - lightness) * max(-1, min(k - 3, 9 - k, 1)))
    return channel(0), channel(8), channel(4)


def _function(kind: str, arguments: str) -> Colour | None:
    """rgb(), rgba(), hsl() or hsla(), with commas or spaces and an alpha after "/" or a fourth comma."""
    parts = arguments.replace(",", " ").replace("/", " ").split()
    if len(parts) not in (3, 4):
        return None
    alpha = _number(parts[3], 1.0) if len(parts) == 4 else 1.0
    if kind.startswith("rgb"):
        channels = [_number(part, 255.0) for part in parts[:3]]
        if alpha is None or None in channels:
            return None
        red, green, blue = (min(max(c, 0.0), 255.0) for c in channels)   # type: ignore[type-var]
    else:
        hue = _number(parts[0].removesuffix("deg"), 1.0)
        saturation, lightness = _number(parts[1], 1.0), _number(parts[2], 1.0)
        if alpha is None or hue is None or saturation is None or lightness is None:
            return None
        percent = parts[1].endswith("%")
        saturation, lightness = (min(max(v / (1 if percent else 100), 0.0), 1.0) for v in (saturation, lightness))
        red, green, blue = _hsl(hue % 360, saturation, lightness)
    return red, green, blue, min(max(alpha, 0.0), 1.0)


@functools.lru_cache(maxsize=1024)
def colour(value: str) -> Colour | None:
    """A CSS colour, or a legacy one of an HTML attribute ("ffffff" without its "#"); None if not known."""
    value = value.strip()
    if value.startswith("#"):
        return _hex(value[1:])
    if value == "transparent":
        return 0.0, 0.0, 0.0, 0.0
    if value in _NAMED:
        return _hex(_NAMED[value])
    found = _FUNCTION.match(value)
    if found:
        return _function(*found.groups())
    return _hex(value) if len(value) == 6 else None


# Text closer than this to what is behind it in every sRGB channel is not seen: the hash-busting words of the
# corpus's spam sit 4 to 12 away from white (#FBFAF8, #F7F3FF), #f0f0f0 on white has a contrast of 1.14:1,
# while WCAG 2's floor for text meant to be read is 3:1. A channel apart by more (yellow on white) stays.
_SAME_COLOUR = 16.0


def unreadable(text: Colour | None, opacity: float, background: Colour | None) -> bool:
    """Whether text of colour `text` under `opacity` cannot be told from the `background` (None: not known)."""
    if text is None:
        return False
    alpha = text[3] * opacity
    if alpha <= 0:
        return True
    if background is None:
        return False
    return all(abs(alpha * t + (1 - alpha) * b - b) < _SAME_COLOUR for t, b in zip(text[:3], background[:3]))


# The words of a background shorthand that are no colour (CSS Backgrounds 3, section 3.10: <bg-layer>), besides
# lengths and percentages. Any other word may be a colour this module does not know ("darkblue", "currentcolor").
_BACKGROUND_WORDS = frozenset({
    "none", "repeat", "repeat-x", "repeat-y", "no-repeat", "space", "round", "scroll", "fixed", "local", "left",
    "right", "top", "bottom", "center", "auto", "cover", "contain", "border-box", "padding-box", "content-box",
    "text", "initial", "inherit", "unset", "revert", "revert-layer"})


def _shorthand_colour(short: str) -> str | None:
    """The colour a background shorthand paints ("transparent" when it names none); None when a word of it may be
    a colour not known: read as no colour, white words on it were judged against the white behind."""
    for word in _WORDS.findall(short):
        if colour(word) is not None:
            return word
        if word not in _BACKGROUND_WORDS and word[0] not in "+-.0123456789":
            return None
    return "transparent"


def background(found: dict[str, str], behind: Colour | None) -> Colour | None:
    """The colour painted behind an element's text: its own background if opaque, else what is behind it."""
    image = found.get("background-image", "none")
    short = found.get("background")
    value = found.get("background-color")
    if short is not None and value is None:
        if "url(" in short or "gradient" in short or "var(" in short or short == UNKNOWN:
            return None
        value = _shorthand_colour(short)
        if value is None:
            return None
    if image not in ("none", "initial") or value == UNKNOWN:
        return None
    if value is None:
        return behind
    painted = colour(value) if value != "currentcolor" else None
    if painted is None:
        return None
    if painted[3] >= 1:
        return painted
    # A half-transparent background over a known one mixes with it; over a colour not known it is not known.
    return None if painted[3] > 0 else behind


# ------------------------------------------------------------------------------------------------ style sheets

_CDO_CDC = re.compile(r"<!--|-->")
_BLOCK = re.compile(r"[{}]")
# A compound selector's parts: a type, then ids and classes; an attribute or pseudo-class part makes it a
# selector that may or may not match (checked as a superset).
_COMPOUND = re.compile(r"(?:([a-z][\w-]*)|\*)?((?:[.#][^.#\s:\[\]()*]+)*)\Z", re.IGNORECASE)
_CONDITION = re.compile(r"\[[^\]]*\]?|\([^)]*\)?|::?[\w-]+")
_COMBINATOR = re.compile(r"\s*[>+~]\s*|\s+")
# Per element at most this many classes are looked up, and per class, id or type at most this many rules of
# more than one part are kept: a hostile sheet of thousands of `.x.cN` rules and elements of thousands of
# classes must not cost their product. What is over either is treated as not known, which hides nothing.
MAX_CLASSES = 64
MAX_RULES_PER_KEY = 32
# And at most this many rules are looked at for one element in all (a newsletter's element meets a handful):
# 64 classes of 32 rules each made a hostile mail's text 25 times slower than without its sheet (about 1.4 s
# a megabyte). Past it, what decides being seen is not known.
MAX_RULES_PER_ELEMENT = 64
_DECIDING = ("display", "visibility", "color", "background")


class _Rule(NamedTuple):
    """Rules of one simple selector: its parts, its specificity, each property's (important, order, value)."""

    tag: str | None
    id: str | None
    classes: frozenset[str]
    folded: frozenset[str]            # its classes in lower case
    specificity: tuple[int, int, int]
    values: dict[str, tuple[bool, int, str]]


_CONDITIONAL_AT = re.compile(r"\s*@(?:media|supports|container|document|layer|scope)\b")


class StyleSheet:
    """A mail's <style> rules, as far as they decide whether text is seen.

    A rule of one compound selector of a type, classes and an id (the selectors mail uses to hide preheaders)
    applies as browsers apply it. A rule that may or may not apply (under @media, a descendant selector, a
    pseudo-class) makes the properties it sets not known for the elements its last compound may match: text
    it would hide stays, and no colour of it is judged. Cost is linear in the sheet and bounded per element.
    """

    def __init__(self) -> None:
        # Rules by their id, a class or their type, in lower case: HTML without a doctype is in quirks mode,
        # where classes and ids match whatever their case (a rule that matches only so is one that may apply).
        self.rules: dict[tuple[str, str], list[_Rule]] = {}
        self.by_selector: dict[tuple[str | None, str | None, frozenset[str]], _Rule] = {}
        self.maybe: dict[tuple[str, str], dict[str, bool]] = {}     # properties a rule may set: is it important
        self.colours_not_known = False     # a rule that may match any element sets a colour or background
        self.order = 0

    def __bool__(self) -> bool:
        return bool(self.rules or self.maybe)

    def applies_to(self, tag: str) -> bool:
        """Whether a rule names elements of type `tag`."""
        return ("", tag) in self.rules or ("", tag) in self.maybe

    def add(self, sheet: str, conditional: bool = False) -> None:
        """Reads the rules of one <style> element; `conditional` when its media attribute limits it."""
        sheet = _CDO_CDC.sub(" ", plain_css(sheet))
        start = 0
        opened: list[str | None] = []   # per open block: the selectors of a rule, or None for an at-rule's block
        maybe = 0                       # open blocks whose rules may or may not apply
        dead = 0                        # open blocks whose content is no rules for elements (@font-face)
        for brace in _BLOCK.finditer(sheet):
            text = sheet[start:brace.start()]
            start = brace.end()
            if brace.group() == "{":
                prelude = text.rpartition(";")[2]
                if prelude.lstrip().startswith("@"):
                    # @media and the like hold rules for some screens only; @font-face and @page none for elements.
                    kind = "maybe" if _CONDITIONAL_AT.match(prelude) else "none"
                    opened.append(kind)
                    maybe += kind == "maybe"
                    dead += kind == "none"
                else:
                    opened.append(prelude)
                    maybe += 1     # a rule nested in it (CSS Nesting) is one of a descendant selector
            elif opened:
                prelude = opened.pop()
                if prelude not in ("maybe", "none"):
                    maybe -= 1
                    if not dead:
                        self._rule(prelude, text, conditional or maybe > 0)
                else:
                    maybe -= prelude == "maybe"
                    dead -= prelude == "none"
        # Blocks still open at the sheet's end are closed there (CSS Syntax 3, section 5.4.8: end of input).
        if opened and opened[-1] not in ("maybe", "none") and not dead:
            prelude = opened[-1]
            self._rule(prelude, sheet[start:], conditional or maybe > 1)

    def _rule(self, selectors: str, block: str, conditional: bool) -> None:
        """One rule: each selector of its list is read on its own."""
        declared = declarations(block)
        if not declared:
            return
        for selector in selectors.split(","):
            selector = selector.strip()
            if selector:
                self._selector(selector, declared, conditional)

    def _selector(self, selector: str, declared: list[tuple[str, str, bool]], conditional: bool) -> None:
        """Keeps a rule of one selector, as one that applies or one that may."""
        compound = _COMBINATOR.split(selector)[-1]
        plain = _CONDITION.sub("", compound)
        exact = compound == selector and plain == compound and not conditional
        found = _COMPOUND.match(plain)
        if not found:
            return     # not a selector: browsers drop the rule
        tag = found.group(1).lower() if found.group(1) else None
        parts = re.findall(r"[.#][^.#]+", found.group(2))
        ids = [p[1:] for p in parts if p[0] == "#"]
        classes = frozenset(p[1:] for p in parts if p[0] == ".")
        key = ("#", ids[0].lower()) if ids else (".", min(classes).lower()) if classes else ("", tag) if tag else None
        if key is None:
            if any(name.startswith(("color", "background")) for name, _, _ in declared):
                self.colours_not_known = True
            return
        if exact and len(ids) <= 1:
            self._exact(key, tag, ids[0] if ids else None, classes, declared)
        else:
            self._may_set(key, declared)

    def _exact(self, key: tuple[str, str], tag: str | None, id_: str | None, classes: frozenset[str],
               declared: list[tuple[str, str, bool]]) -> None:
        """Merges a rule into the one of the same selector, each property keeping its place in the order."""
        rule = self.by_selector.get((tag, id_, classes))
        if rule is None:
            kept = self.rules.setdefault(key, [])
            if len(kept) >= MAX_RULES_PER_KEY:
                self._may_set(key, declared)
                return
            specificity = (1 if id_ else 0, len(classes), 1 if tag else 0)
            rule = _Rule(tag, id_, classes, frozenset(c.lower() for c in classes), specificity, {})
            kept.append(rule)
            self.by_selector[(tag, id_, classes)] = rule
        for name, value, important in declared:
            self.order += 1
            if important or not rule.values.get(name, (False,))[0]:
                rule.values[name] = (important, self.order, value)

    def _may_set(self, key: tuple[str, str], declared: list[tuple[str, str, bool]]) -> None:
        """Remembers the properties a rule that may apply to elements of `key` sets."""
        maybe = self.maybe.setdefault(key, {})
        for name, _, important in declared:
            maybe[name] = maybe.get(name, False) or important

    def matching(self, tag: str, id_: str | None, class_names: str | None) -> list[tuple[str, str, bool]]:
        """The declarations the sheet gives an element, in cascade order, before its inline style's."""
        names = class_names.split() if class_names else []
        classes = frozenset(names[:MAX_CLASSES])
        folded = frozenset(name.lower() for name in classes)
        folded_id = id_.lower() if id_ else None
        keys = [("", tag), *((".", name) for name in folded)] + ([("#", folded_id)] if folded_id else [])
        chosen: dict[str, tuple[bool, tuple[int, int, int], int, str]] = {}
        not_known: dict[str, bool] = {}
        looked_at = 0
        for key in keys:
            rules = self.rules.get(key, ())
            looked_at += len(rules)
            if looked_at > MAX_RULES_PER_ELEMENT:
                not_known.update(dict.fromkeys(_DECIDING, True))
                break
            for rule in rules:
                if rule.tag not in (None, tag) or rule.id is not None and rule.id.lower() != folded_id or \
                        not rule.folded <= folded:
                    continue
                same_case = (rule.id is None or rule.id == id_) and rule.classes <= classes
                for name, (important, order, value) in rule.values.items():
                    if not same_case:
                        not_known[name] = not_known.get(name, False) or important
                    elif name not in chosen or (important, rule.specificity, order) > chosen[name][:3]:
                        chosen[name] = (important, rule.specificity, order, value)
            for name, important in self.maybe.get(key, {}).items():
                not_known[name] = not_known.get(name, False) or important
        if len(names) > MAX_CLASSES:
            not_known.update(dict.fromkeys(_DECIDING, True))
        ordered = sorted(chosen.items(), key=lambda item: item[1][:3])
        return [(name, value, important) for name, (important, _, _, value) in ordered] + \
            [(name, UNKNOWN, important) for name, important in not_known.items()]


# ------------------------------------------------------------------------------------------------ looks

class Look(NamedTuple):
    """How an open element's text looks, as far as it decides whether it is seen; inherited by its content."""

    invisible: bool                 # visibility: hidden or collapse
    size: float                     # font size in CSS pixels
    colour: Colour | None           # text colour, None if not known
    opacity: float                  # the product of its and its ancestors' opacity
    background: Colour | None       # the colour painted behind it, None if not known
    unseen: bool                    # its text is not seen: invisible, too small or of the background's colour


PAGE = Look(False, DEFAULT_SIZE, BLACK, 1.0, WHITE, False)
# Text under this size in CSS pixels is not seen: its x-height, about half the size, is a pixel or less on a
# screen of 96 dpi, too little to tell one letter from another. Small print in mail is 7px and up; the tiny
# type of preheaders and hash-busting spam is 0 to 2px.
MIN_SIZE = 3.0


def looked(invisible: bool, size: float, text: Colour | None, opacity: float, behind: Colour | None,
           colours_known: bool = True) -> Look:
    """A Look, with whether its text is seen worked out once for all its text."""
    unseen = invisible or size < MIN_SIZE or colours_known and unreadable(text, opacity, behind)
    return Look(invisible, size, text, opacity, behind, unseen)
