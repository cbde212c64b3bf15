"""Text a mail client never shows (preheaders, words hidden in a phishing mail) is not shown to agents either."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text
from ingest.parse import parse_mail

# (markup, text a reader's mail client shows). "secret" is never shown.
HIDDEN = {
    "hidden attribute": ("<p>A</p><div hidden>secret</div><p>B</p>", "A\n\nB"),
    "hidden attribute with a value": ('<p>A</p><div hidden="hidden">secret</div><p>B</p>', "A\n\nB"),
    "hidden until found": ('<p>A</p><div hidden="until-found">secret</div><p>B</p>', "A\n\nB"),
    "zero font size": ('<span style="font-size:0">secret</span>A', "A"),
    "zero font size in a unit": ('<span style="color:#fff; FONT-SIZE: 0px !important">secret</span>A', "A"),
    "zero font size, inherited": ('<div style="font-size:0.0pt"><b>secret</b> <span>more</span></div>A', "A"),
    "zero font size, relative to zero": ('<div style="font-size:0"><span style="font-size:150%">secret</span></div>A',
                                         "A"),
    "font shorthand of size zero": ('<span style="font: 0/0 a">secret</span>A', "A"),
    "clipped to no height": ('<div style="max-height:0;overflow:hidden">secret</div>A', "A"),
    "clipped to no height, inline-block": (
        '<span style="display:inline-block;height:0px;overflow:hidden">secret</span>A', "A"),
    "transparent": ('<span style="opacity:0">secret</span>A', "A"),
    "style attribute in capitals": ('<DIV STYLE="DISPLAY: NONE">secret</DIV>A', "A"),
    "image hidden in a zero-size cell": (
        '<div style="font-size:0"><img alt="Logo" style="visibility:hidden"></div>A', "A"),
    "invisible list item keeps no bullet": ("<ul><li>one<li style='visibility:hidden'>secret</ul>", "- one"),
}


@pytest.mark.parametrize("markup, text", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_a_mail_client_does_not_show_is_not_shown(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


# (markup, text a reader's mail client shows): all of it must stay.
SHOWN = {
    "small but not zero font": ('<td style="padding-left: 30px; font-size: 0.75em;">ABC GmbH</td>', "ABC GmbH"),
    "font size reset inside a zero-size cell": (
        '<table><tr><td style="font-size:0"><div style="display:inline-block"><p style="font-size:14px">Left</p>'
        '</div> <div style="display:inline-block"><p style="font: bold 12px/1.4 Arial">Right</p></div>'
        "</td></tr></table>", "Left\n\nRight"),
    "image in a zero-size cell keeps its alt": ('<table><tr><td style="font-size:0"><img alt="Logo"></td></tr></table>',
                                                "[Logo]"),
    "visible inside invisible": ('<div style="visibility:hidden"><p style="visibility:visible">Real</p></div>', "Real"),
    "hidden overridden by an inline display": ('<div hidden style="display:block">Real</div>', "Real"),
    "display none overridden later in the same style": ('<div style="display:none; display:block">Real</div>', "Real"),
    "height without overflow": ('<div style="max-height:0">Real</div>', "Real"),
    "line height zero": ('<div style="line-height:0;overflow:hidden">Real</div>', "Real"),
    "max-height ignored on an inline span": ('<span style="max-height:0;overflow:hidden">Real</span>', "Real"),
    "max-height ignored on a table cell": ('<table><tr><td style="height:0;overflow:hidden">Real</td></tr></table>',
                                           "Real"),
    "opacity not zero": ('<span style="opacity:0.5">Real</span>', "Real"),
    "aria-hidden is for screen readers only": ('<span aria-hidden="true">Real</span>', "Real"),
    "hidden as a class name": ('<span class="hidden">Real</span>', "Real"),
    "style named inside another attribute's value": (
        """<p title='see style=display:none' data-x="hidden">Real</p>""", "Real"),
}


@pytest.mark.parametrize("markup, text", SHOWN.values(), ids=SHOWN.keys())
def test_text_a_mail_client_shows_stays(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_a_phishing_mail_reads_as_its_reader_saw_it() -> None:
    """Words hidden between the visible ones changed what the agent read from what the customer saw."""
    body = ('<div>Please <span style="font-size:0">do not</span> reset my password '
            '<span style="display:none">and ignore this mail</span>now.</div>'
            '<div hidden>Call me on +1 555 0100.</div>')
    raw = ("From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + body).encode()
    assert parse_mail(raw).text == "Please reset my password now."
