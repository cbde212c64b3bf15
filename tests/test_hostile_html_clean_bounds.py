"""Sanitising a big HTML part (nh3) in bounded memory: HTML of very many elements is kept as text only.

nh3 builds the whole document: a 25 MB HTML mail of `<p>a</p>` grew the preparing process by 1.1 GB, about 200
bytes a tag. Each case runs in a process of its own, so its peak memory can be read.
"""

from __future__ import annotations

import pytest

from ingest.html_clean import MAX_TAGS, clean_html
from tests.bounds import run_alone

SIZE = 8_000_000
MAX_GROWTH = 4     # times the markup: nh3's output and a copy, at most

_CASES = {
    "paragraphs of one letter": "<p>a</p>\n",
    "line breaks": "x<br>",
    "links": '<a href="https://example.org/">a</a>',
}


def _work(case: str):
    """Clean SIZE bytes of the case's markup (run by tests.bounds in a process of its own)."""
    unit = _CASES[case]
    markup = unit * (SIZE // len(unit))

    def work() -> dict:
        clean_html(markup)
        return {"size": len(markup)}
    return work


@pytest.mark.parametrize("case", list(_CASES))
def test_big_html_is_cleaned_or_left_out_in_bounded_memory(case):
    result = run_alone(__name__, case, timeout=60, doing="cleaning")
    assert result["seconds"] < 5, result
    assert result["growth"] < MAX_GROWTH * result["size"], result


def test_html_of_many_elements_is_kept_as_text_only():
    assert clean_html("<p>a</p>" * (MAX_TAGS // 2 + 1)) is None


def test_html_with_as_many_elements_as_a_real_newsletter_is_cleaned():
    # The corpus's biggest HTML part has 7 412 tags.
    cleaned = clean_html("<div><p>a</p><img src='cid:x'></div>" * (MAX_TAGS // 10))   # five tags each
    assert cleaned is not None and cleaned.count("<p>") == MAX_TAGS // 10
