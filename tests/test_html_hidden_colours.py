"""Text in the colour of what is behind it, or in no colour at all, is not shown: a reader never saw it.

White words on a white page are how phishing and spam hide what a filter or an agent should read; mail
without a background of its own shows on white. "secret" is never shown to a reader.
"""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text

HIDDEN = {
    "white on the default page": ('<span style="color:#ffffff">secret</span>A', "A"),
    "white on white, both on the element": ('<span style="color:#fff;background:#ffffff">secret</span>A', "A"),
    "white on an ancestor's white background": ('<div style="background:#fff"><span style="color:white">secret'
                                                "</span></div>A", "A"),
    "white on a bgcolor attribute": ('<body bgcolor="#FFFFFF"><span style="color:#ffffff">secret</span>A</body>', "A"),
    "font colour attribute": ('<font color="#ffffff">secret</font>A', "A"),
    "equal colours on a dark cell": ('<table><tr><td bgcolor="#123456"><font color="#123456">secret</font>A'
                                     "</td></tr></table>", "A"),
    "equal in different spellings": ('<div style="background-color:rgb(0, 128, 0)"><span style="color:#008000">'
                                     "secret</span>A</div>", "A"),
    "nearly white, as spam writes it": ('<span style="color:#FBFAF8">secret</span>A', "A"),
    "transparent": ('<span style="color:transparent">secret</span>A', "A"),
    "rgba of no alpha": ('<span style="color:rgba(0,0,0,0)">secret</span>A', "A"),
    "rgb with a zero alpha": ('<span style="color:rgb(0 0 0 / 0%)">secret</span>A', "A"),
    "hsla of no alpha": ('<span style="color:hsla(0,0%,0%,0)">secret</span>A', "A"),
    "eight-digit hex of no alpha": ('<span style="color:#ffffff00">secret</span>A', "A"),
    "four-digit hex of no alpha": ('<span style="color:#0000">secret</span>A', "A"),
    "inherited by a child": ('<div style="color:#fff"><p>secret</p></div>A', "A"),
    "hsl white": ('<span style="color:hsl(0, 0%, 100%)">secret</span>A', "A"),
    "escaped colour name": ('<span style="color:\\77 hite">secret</span>A', "A"),
}


@pytest.mark.parametrize("markup, text", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_in_the_colour_behind_it_is_not_shown(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


SHOWN = {
    "white on a dark background": ('<div style="background:#000"><span style="color:#fff">Real</span></div>', "Real"),
    "white on a dark bgcolor": ('<table bgcolor="#1a1a1a"><tr><td><font color="#ffffff">Real</font></td></tr>'
                                "</table>", "Real"),
    "white on a dark body": ('<body style="background-color:#222"><p style="color:#fff">Real</p></body>', "Real"),
    "white on a background image": ('<td style="background:url(cid:hero) #fff;color:#fff">Real</td>', "Real"),
    "white on a background attribute image": ('<table background="cid:hero"><tr><td style="color:#fff">Real</td>'
                                              "</tr></table>", "Real"),
    "white on a gradient": ('<div style="background-image:linear-gradient(#000, #333)"><span style="color:#fff">'
                            "Real</span></div>", "Real"),
    "white on a colour the text does not know": ('<div style="background:var(--dark)"><span style="color:#fff">'
                                                 "Real</span></div>", "Real"),
    "white on a half-transparent dark background": (
        '<div style="background:rgba(0,0,0,0.5)"><span style="color:#fff">Real</span></div>', "Real"),
    "transparent background shows the dark one behind": (
        '<div style="background:#000"><p style="background:transparent;color:#fff">Real</p></div>', "Real"),
    "a link keeps its own colour": ('<div style="color:#fff"><a href="https://a.example/">Real</a></div>',
                                    "Real <https://a.example/>"),
    "light grey": ('<span style="color:#c7c7c7">Real</span>', "Real"),
    "yellow on white": ('<span style="color:#ffff00">Real</span>', "Real"),
    "colour back to dark inside white": ('<div style="color:#fff"><span style="color:#333">Real</span></div>', "Real"),
    "half-transparent black": ('<span style="color:rgba(0,0,0,0.5)">Real</span>', "Real"),
    "a colour the text does not know": ('<span style="color:var(--fg)">Real</span>', "Real"),
    "white on a dark background set after it": ('<span style="color:#fff;background-color:#333">Real</span>', "Real"),
    # An escaped "#" makes a name, not a hex colour (CSS Syntax 3, section 4.3.4): browsers drop the declaration.
    "escaped hash is no colour": ('<span style="color:\\23 fff">Real</span>', "Real"),
    "image alt in white": ('<div style="color:#fff"><img alt="Logo"></div>', "[Logo]"),
}


@pytest.mark.parametrize("markup, text", SHOWN.values(), ids=SHOWN.keys())
def test_text_that_stands_out_from_its_background_stays(markup: str, text: str) -> None:
    assert html_to_text(markup) == text
