"""HTML made into text: memory in proportion to the text made, time in proportion to the markup.

A 16 MB HTML mail of `<p>a</p>` took about 840 MB and 13 s to make into text: every row of text was kept as a
tuple until the end. Each case runs in a process of its own, so its peak memory can be read.
"""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text
from tests.bounds import run_alone

SIZE = 4_000_000
MAX_SECONDS = 8.0
MAX_GROWTH = 4        # times the markup (one byte a character here): the text and a copy of it while joined

_CASES = {
    "paragraphs of one letter": "<p>a</p>\n",
    "line breaks": "x<br>",
    "quoted paragraphs": "<blockquote><p>ab</p></blockquote>",
    "one text of words and entities": "word &amp; ",
    "list items": "<li>item",
}


def _work(case: str):
    """Make SIZE bytes of the case's markup into text (run by tests.bounds in a process of its own)."""
    unit = _CASES[case]
    markup = unit * (SIZE // len(unit))

    def work() -> dict:
        text = html_to_text(markup)
        return {"size": len(markup), "text": len(text)}
    return work


@pytest.mark.parametrize("case", list(_CASES))
def test_big_html_is_made_text_in_bounded_time_and_memory(case):
    result = run_alone(__name__, case, timeout=60, doing="making text")
    assert result["text"] > result["size"] // 20, result
    assert result["seconds"] < MAX_SECONDS, result
    assert result["growth"] < MAX_GROWTH * result["size"], result


def test_blank_lines_between_paragraphs_and_quotes_stay_as_they_were():
    markup = ("<p>one</p><p></p><p>two</p><blockquote><p>q1</p><p>q2</p></blockquote><p>three</p>"
              "<blockquote>a<blockquote><p>deep</p></blockquote><p>b</p></blockquote><pre>x  \n\n y</pre>")
    assert html_to_text(markup) == "one\n\ntwo\n> q1\n>\n> q2\nthree\n> a\n> > deep\n> b\nx\n\n y"


def test_text_of_many_lines_is_joined_in_order():
    markup = "".join(f"<div>line {i}</div>" for i in range(10_000))
    assert html_to_text(markup) == "\n".join(f"line {i}" for i in range(10_000))


def test_long_text_keeps_every_character_reference_and_space_run_whole():
    # Long text is worked on in pieces: no reference and no run of blanks may be cut in two.
    assert html_to_text("&amp;" * 50_000 + "&#x41;" * 20_000) == "&" * 50_000 + "A" * 20_000
    assert html_to_text(("a \t&nbsp;\u00a0 " * 30_000).strip()) == " ".join(["a"] * 30_000)
    assert html_to_text("x" * 70_000 + "&lt;" + "y" * 70_000) == "x" * 70_000 + "<" + "y" * 70_000
