"""Inline styles that hide text however a writer spells them: CSS escapes and comments, tiny type, text moved
off the page or clipped away, and text in the colour of what is behind it.

A phishing mail hid words with `display:\\6e one` or white on white, which every mail client honours and
ticketd did not: agents read words the customer never saw. "secret" is never shown to a reader.
"""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text

HIDDEN = {
    # CSS Syntax 3, section 4.3.7: an escape is a code point, so "\6e one" is "none"; and a comment
    # separates tokens (section 4.3.2), so "display:/**/none" is "display: none".
    "escaped keyword": ('<span style="display:\\6e one">secret</span>A', "A"),
    "escaped letter": ('<span style="display:n\\6f ne">secret</span>A', "A"),
    "escape of a plain letter": ('<span style="visibility:\\hidden">secret</span>A', "A"),
    "escaped property name": ('<span style="\\64isplay:none">secret</span>A', "A"),
    "comment between tokens": ('<span style="display:/**/none">secret</span>A', "A"),
    "upper case and spaces": ('<span style="DISPLAY : NONE !important">secret</span>A', "A"),
    "important with a space": ('<span style="display:none ! important; display:block">secret</span>A', "A"),
    "visibility collapse": ('<span style="visibility:collapse">secret</span>A', "A"),
    "width and height zero": ('<div style="width:0;height:0;overflow:hidden">secret</div>A', "A"),
    "width zero, overflow hidden": ('<div style="width:0px;overflow:hidden">secret</div>A', "A"),
    "max-width zero, overflow hidden": ('<p style="overflow:hidden;max-width:0">secret</p>A', "A"),
    "one pixel type": ('<span style="font-size:1px">secret</span>A', "A"),
    "one pixel type, line height zero": ('<span style="font-size:1px;line-height:0">secret</span>A', "A"),
    "one point type": ('<span style="font-size:1pt">secret</span>A', "A"),
    "tiny relative to its parent": ('<div style="font-size:10px"><span style="font-size:10%">secret</span></div>A',
                                    "A"),
    "tiny in ems of the default size": ('<span style="font-size:0.1em">secret</span>A', "A"),
    "tiny in a font shorthand": ('<span style="font:1px/1px Arial">secret</span>A', "A"),
    "escaped zero size": ('<span style="font-size:\\30 px">secret</span>A', "A"),
    "indented off the page": ('<div style="text-indent:-9999px">secret</div>A', "A"),
    "positioned off the page": ('<div style="position:absolute;left:-9999px">secret</div>A', "A"),
    "positioned above the page": ('<div style="position:absolute;top:-5000px">secret</div>A', "A"),
    "clipped to nothing": ('<div style="position:absolute;clip:rect(0 0 0 0)">secret</div>A', "A"),
    "clipped to one pixel": ('<span style="position:absolute;clip:rect(1px, 1px, 1px, 1px)">secret</span>A', "A"),
    "clip-path inset by half": ('<div style="clip-path:inset(50%)">secret</div>A', "A"),
    "scaled to nothing": ('<div style="transform:scale(0)">secret</div>A', "A"),
    "scaled to nothing in one axis": ('<div style="transform:scaleY(0)">secret</div>A', "A"),
}


@pytest.mark.parametrize("markup, text", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_styled_out_of_sight_is_not_shown(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


SHOWN = {
    # A comment in a name makes two names, an invalid declaration that browsers drop (CSS Syntax 3, 4.3.2).
    "comment inside a property name": ('<span style="disp/**/lay:none">Real</span>', "Real"),
    "escaped but another keyword": ('<span style="display:\\6e ormal">Real</span>', "Real"),
    "escaped backslash": ('<span style="display:\\\\none">Real</span>', "Real"),
    "small print": ('<span style="font-size:8px">Real</span>', "Real"),
    "small print in points": ('<span style="font-size:6pt">Real</span>', "Real"),
    "relative size of a normal parent": ('<div style="font-size:20px"><span style="font-size:50%">Real</span></div>',
                                         "Real"),
    "relative size reset from a tiny parent": (
        '<div style="font-size:1px"><span style="font-size:14px">Real</span></div>', "Real"),
    "a bare number is a weight, not a size": ('<span style="font:1 Arial">Real</span>', "Real"),
    "indented a little": ('<p style="text-indent:-20px;margin-left:20px">Real</p>', "Real"),
    "positioned on the page": ('<div style="position:relative;left:-10px">Real</div>', "Real"),
    "offset without positioning": ('<div style="left:-9999px">Real</div>', "Real"),
    "clip without positioning": ('<div style="clip:rect(0 0 0 0)">Real</div>', "Real"),
    "clip of a real size": ('<div style="position:absolute;clip:rect(0 200px 30px 0)">Real</div>', "Real"),
    "clip-path inset a little": ('<div style="clip-path:inset(10%)">Real</div>', "Real"),
    "scaled up": ('<div style="transform:scale(1.5)">Real</div>', "Real"),
    "rotated": ('<div style="transform:rotate(0deg) translate(0, 0)">Real</div>', "Real"),
    "width zero without overflow hidden": ('<div style="width:0">Real</div>', "Real"),
}


@pytest.mark.parametrize("markup, text", SHOWN.values(), ids=SHOWN.keys())
def test_text_a_reader_sees_stays(markup: str, text: str) -> None:
    assert html_to_text(markup) == text
