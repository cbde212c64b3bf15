"""A background shorthand in a colour the text does not know paints that colour, not nothing.

`background: darkblue` (or midnightblue, rebeccapurple, currentColor, lab(), color-mix(): CSS Color 4 names
and functions ingest/html_style.py does not list) was read as a transparent background, so white words on it
were judged against the white page and left out of the agents' text, though every reader saw them. As for
background-color, a colour not known judges no text (PRODUCT.md "Agents by email": the reply text goes on).
"""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text

SHOWN = {
    "a CSS named colour not listed": '<div style="background: darkblue; color: white">Real</div>',
    "inherited by a paragraph": '<div style="background: DarkRed"><p style="color:#fff">Real</p></div>',
    "with other background words": '<div style="background: no-repeat center midnightblue"><b style="color:#fff">'
                                   "Real</b></div>",
    "the text colour": '<div style="color:#000"><div style="background:currentColor"><span style="color:#fff">'
                       "Real</span></div></div>",
    "a colour function not read": '<div style="background: lab(10% 0 0); color:#fff">Real</div>',
    "from the style sheet": '<style>.banner{background: rebeccapurple}</style><div class="banner" '
                            'style="color:#fff">Real</div>',
}


@pytest.mark.parametrize("markup", SHOWN.values(), ids=SHOWN.keys())
def test_white_words_on_a_background_colour_not_known_stay(markup: str) -> None:
    assert html_to_text(markup) == "Real"


HIDDEN = {
    "no colour in the shorthand": '<div style="background: no-repeat center"><span style="color:#fff">secret'
                                  "</span></div>A",
    "none": '<div style="background: none"><span style="color:#fff">secret</span></div>A',
    "a known white with position words": '<div style="background: top left #fff"><span style="color:#fff">'
                                         "secret</span></div>A",
    "lengths and a percentage": '<div style="background: 0 50% / 10px auto"><span style="color:#fff">secret'
                                "</span></div>A",
}


@pytest.mark.parametrize("markup", HIDDEN.values(), ids=HIDDEN.keys())
def test_a_shorthand_of_known_words_still_shows_the_white_behind(markup: str) -> None:
    assert html_to_text(markup) == "A"
