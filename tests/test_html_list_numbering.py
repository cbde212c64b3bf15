"""An ordered list is numbered as a browser numbers it: counting down, from a given value, in letters or roman."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text
from ingest.parse import parse_mail


@pytest.mark.parametrize("markup, text", [
    # Counting down from the number of items, or from start (HTML, the ol element: reversed).
    ("<ol reversed><li>x<li>y<li>z</ol>", "3. x\n2. y\n1. z"),
    ("<ol reversed start=10><li>x<li>y</ol>", "10. x\n9. y"),
    ("<ol reversed><li>x<ol><li>in</ol><li>y</ol>", "2. x\n\n1. in\n\n1. y"),
    # An item's value sets its number and those after it (HTML, the li element: ordinal value).
    ("<ol><li value=3>x<li>y</ol>", "3. x\n4. y"),
    ("<ol start=5><li>x<li value='10'>y<li>z</ol>", "5. x\n10. y\n11. z"),
    ("<ol reversed><li>x<li value=7>y<li>z</ol>", "3. x\n7. y\n6. z"),
    # Integers are read as HTML reads them: leading spaces, a sign, digits; the rest ignored.
    ("<ol start=' 5.'><li>x</ol>", "5. x"),
    ("<ol start=-1><li>x<li>y</ol>", "-1. x\n0. y"),
    ("<ol start=x><li>x</ol>", "1. x"),
])
def test_numbers_count_as_a_browser_counts_them(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize("markup, text", [
    ("<ol type=a><li>x<li>y</ol>", "a. x\nb. y"),
    ("<ol type=A start=26><li>x<li>y</ol>", "Z. x\nAA. y"),
    ("<ol type=i start=3><li>x<li>y</ol>", "iii. x\niv. y"),
    ("<ol type=I start=1994><li>x</ol>", "MCMXCIV. x"),
    ("<ol type=1><li>x</ol>", "1. x"),
    # Outside what letters and roman numerals can count, numbers stand in (CSS Counter Styles, fallback).
    ("<ol type=a start=0><li>x</ol>", "0. x"),
    ("<ol type=i start=4000><li>x</ol>", "4000. x"),
    # An item's own type, and an inline list-style, decide over the list's type attribute.
    ("<ol type=a><li>x<li type=I>y</ol>", "a. x\nII. y"),
    ('<ol type=a style="list-style-type: upper-roman"><li>x</ol>', "I. x"),
    ('<ol style="list-style: lower-alpha inside"><li>x</ol>', "a. x"),
    ("<ol reversed type=i><li>x<li>y</ol>", "ii. x\ni. y"),
])
def test_numbers_are_written_as_the_list_type_says(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_a_customer_continuing_their_steps_is_read_with_the_same_numbers() -> None:
    body = "<div>Steps 1 to 4 worked. Then:</div><ol start=5><li>Open settings<li>Press reset</ol>" \
           "<ol type=a><li>it beeps</ol>"
    raw = ("From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + body).encode()
    assert parse_mail(raw).text == "Steps 1 to 4 worked. Then:\n\n5. Open settings\n6. Press reset\n\na. it beeps"
