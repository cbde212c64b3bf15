"""A mail's own <style> rules that hide text are honoured, as Gmail, Outlook and Apple Mail honour them.

`.x{display:none}` and `<span class="x">` hid words from the reader and showed them to agents. Only rules of
simple selectors (a type, classes, an id) that always apply are read; a rule under @media applies on some
screens only, and text it shows there stays. The cost stays linear however many rules and classes a mail has.
"""

from __future__ import annotations

import time

import pytest

from ingest.html_text import html_to_text

HIDDEN = {
    "class": ("<style>.x{display:none}</style><p>A</p><span class=x>secret</span>", "A"),
    "id": ('<style>#pre { display : none }</style><div id="pre">secret</div>A', "A"),
    "type and class": ('<style>span.x{visibility:hidden}</style><span class="a x b">secret</span>A', "A"),
    "two classes": ('<style>.a.b{display:none}</style><span class="b a">secret</span>A', "A"),
    "one of a selector list": ("<style>p{margin:0} .y, .x {font-size:0}</style><span class=x>secret</span>A", "A"),
    "class in capitals": ("<style>.X{display:none}</style><span class=X>secret</span>A",
                                                        "A"),
    "white class on the default page": ("<style>.w{color:#ffffff}</style><span class=w>secret</span>A", "A"),
    "important beats inline": ('<style>.x{display:none!important}</style><span class=x style="display:inline">'
                               "secret</span>A", "A"),
    "more specific rule wins": ("<style>.x{display:none} span{display:inline}</style><span class=x>secret</span>A",
                                "A"),
    "later rule wins": ("<style>.x{display:block} .x{display:none}</style><span class=x>secret</span>A", "A"),
    "a rule in a sheet in the body": ("<p>A</p><style>.x{display:none}</style><p class=x>secret</p>", "A"),
    "sheet inside an HTML comment marker": ("<style><!-- .x{display:none} --></style><span class=x>secret</span>A",
                                            "A"),
    "rule left open at the sheet's end": ("<style>.x{display:none</style><span class=x>secret</span>A", "A"),
    "escaped class name": ("<style>.\\31 x{display:none}</style><span class=1x>secret</span>A", "A"),
}


@pytest.mark.parametrize("markup, text", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_a_style_sheet_hides_is_not_shown(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


SHOWN = {
    "class not on the element": ("<style>.x{display:none}</style><span class=y>Real</span>", "Real"),
    "class names are case-sensitive": ("<style>.x{display:none}</style><span class=X>Real</span>", "Real"),
    "inline style beats the sheet": ('<style>.x{display:none}</style><span class=x style="display:inline">Real</span>',
                                     "Real"),
    "rule under a media query": ("<style>@media (max-width:600px){.x{display:none}}</style><span class=x>Real</span>",
                                 "Real"),
    "hidden, but shown on small screens": (
        "<style>.m{display:none} @media screen and (max-width:480px){ .m{display:block !important} }</style>"
        "<div class=m>Real</div>", "Real"),
    "descendant selector is not read": ("<style>.a .x{display:none}</style><div class=a><span class=x>Real</span>"
                                        "</div>", "Real"),
    "pseudo-class is not read": ("<style>.x:hover{display:none}</style><span class=x>Real</span>", "Real"),
    "sheet for Outlook only": ("<!--[if mso]><style>.x{display:none}</style><![endif]--><span class=x>Real</span>",
                               "Real"),
    "sheet in a comment in the sheet": ("<style>/* .x{display:none} */</style><span class=x>Real</span>", "Real"),
    "dark background from a class": ('<style>.dark{background:#000}</style><table><tr><td class="dark">'
                                     '<span style="color:#fff">Real</span></td></tr></table>', "Real"),
    "dark body from the sheet": ('<style>body{background-color:#111;color:#eee}</style><body><p style="color:#fff">'
                                 "Real</p></body>", "Real"),
    "background from a selector that is not read": (
        '<style>.wrap td{background:#000}</style><div class=wrap><table><tr><td style="color:#fff">Real</td></tr>'
        "</table></div>", "Real"),
    "colour reset by a type rule": ('<style>p{color:#333}</style><div style="color:#fff"><p>Real</p></div>', "Real"),
    "class shown again by a later rule": ("<style>.x{display:none}</style><style>.x{display:block}</style>"
                                          "<span class=x>Real</span>", "Real"),
}


@pytest.mark.parametrize("markup, text", SHOWN.values(), ids=SHOWN.keys())
def test_text_a_style_sheet_leaves_shown_stays(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def _seconds(markup: str) -> float:
    start = time.process_time()
    html_to_text(markup)
    return time.process_time() - start


@pytest.mark.parametrize("shape", ["many rules for one class", "many classes on each element",
                                   "many compound rules sharing a class"])
def test_hostile_sheets_cost_time_in_proportion_to_the_mail(shape: str) -> None:
    def mail(n: int) -> str:
        if shape == "many rules for one class":
            return "<style>" + ".x{display:block}" * n + "</style>" + "<span class=x>a</span>" * n
        if shape == "many classes on each element":
            classes = " ".join(f"c{i}" for i in range(200))
            return "<style>" + "".join(f".c{i}{{color:#000}}" for i in range(200)) + "</style>" + \
                f"<span class='{classes}'>a</span>" * (n // 100)
        return "<style>" + "".join(f".x.c{i}{{display:none}}" for i in range(n)) + "</style>" + \
            "<span class='x'>a</span>" * n

    small, big = mail(5_000), mail(40_000)
    ratio = min(_seconds(big) for _ in range(2)) / max(min(_seconds(small) for _ in range(2)), 1e-3)
    # Eight times the mail: about 8 if linear, 64 if quadratic. Under a loaded machine a linear run measured
    # up to about 2.3 times its ratio (a small run's fixed costs weigh more), so the bound leaves room for that.
    assert ratio < 24
    assert _seconds(big) < 10
