"""A mail's own style sheet, met late or made large, hides no text a reader sees and costs no more than its size.

A `<style>` inside `<body>` (forwarded or embedded HTML) that paints the page dark left white words already
open judged against white, and they were dropped. A sheet of `.aN.xM` rules with elements of 64 classes each
had every element look at 2 048 rules: 2.3 s a megabyte of markup, about a minute for a mail at the size limit,
while every other mail waited for the parsing process.
"""

from __future__ import annotations

from ingest.html_text import html_to_text
from tests.bounds import run_alone

SIZE = 4_000_000
MAX_TIMES = 4         # the sheet's cost over the bare markup's


def test_a_sheet_in_the_body_that_paints_the_page_dark_keeps_white_words():
    assert html_to_text('<html><body><style>body{background:#000}</style>'
                        '<p style="color:#fff">Hello</p></body></html>') == "Hello"
    assert html_to_text('<html><body><div><style>body{background:#123}</style>'
                        '<p style="color:#fff">Inside a div</p></div></body></html>') == "Inside a div"


def test_a_late_sheet_that_paints_nothing_still_leaves_white_on_white_out():
    assert html_to_text('<html><body><style>.x{color:red}</style><p style="color:#fff">Hidden</p>'
                        '<p>Seen</p></body></html>') == "Seen"


def _work(case: str):
    """SIZE bytes of elements of 64 classes under a sheet of 64 x 32 compound rules, or none (tests.bounds)."""
    rules = "".join(f".a{i}.x{j}{{color:red}}" for i in range(64) for j in range(32)) if case == "many rules" else ""
    classes = " ".join(f"a{i}" for i in range(63))
    # Each element's classes differ (the last one), so no element's look is worked out once for many.
    elements = [f'<p class="{classes} u{n}">word</p>' for n in range(SIZE // (len(classes) + 25))]
    markup = f"<html><head><style>{rules}</style></head><body>" + "".join(elements) + "</body></html>"

    def work() -> dict:
        return {"size": len(markup), "text": len(html_to_text(markup))}
    return work


def test_a_sheet_of_many_rules_for_many_classes_costs_time_in_proportion_to_the_markup():
    """Against the same markup without the sheet, measured alike (a machine's speed divides
    out): here about 2 times with the cap, 25 times without it."""
    sheet = run_alone(__name__, "many rules", timeout=120, doing="making text")
    bare = run_alone(__name__, "no rules", timeout=120, doing="making text")
    assert sheet["text"] == bare["text"] > 0, (sheet, bare)
    assert sheet["seconds"] < MAX_TIMES * bare["seconds"] + 0.5, (sheet, bare)
