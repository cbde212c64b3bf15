"""HTML to text: hidden content ends where browsers end it, and time grows linearly with size."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ingest.html_text import html_to_text
from ingest.parse import parse_mail


# (markup, text that must show, text that must not). HTML lets a writer leave out </head>,
# </p>, </td>, </li> and more; browsers imply them, and a hidden element's content ends there.
CASES = {
    "head without its end tag": (
        "<html><head><title>x</title><body><p>My printer is on fire.</p>", "My printer is on fire.", "x"),
    "head ended by body content": (
        "<html><head><meta charset=utf-8>\r\n<p>Invoice 4711 was charged twice.</p></html>",
        "Invoice 4711 was charged twice.", None),
    "head opened twice instead of closed": (
        "<html><head><style>p {margin: 0}</style><head><body><div>Is somebody there?</div></body></html>",
        "Is somebody there?", "margin"),
    "title without its end tag": (
        "<html><head><title>Support request<body><p>Real text</p></body></html>", "Real text", "Support request"),
    "title holding a <": ("<title>a<b</title><p>Real text</p>", "Real text", "a<b"),
    "hidden p ended by the next p": ('<p style="display:none">preheader<p>Real text', "Real text", "preheader"),
    "hidden p ended by a block": ('<p style="display:none">preheader<div>Real text</div>', "Real text", "preheader"),
    "hidden td ended by the next td": (
        "<table><tr><td style=display:none>preheader<td>Real text</td></tr></table>", "Real text", "preheader"),
    "hidden td ended by the next tr": (
        "<table><tr><td style=display:none>preheader<tr><td>Real text</td></tr></table>", "Real text", "preheader"),
    "hidden li ended by the next li": (
        "<ul><li style='display:none'>preheader<li>Real text</ul>", "Real text", "preheader"),
    "hidden span ended by its parent": (
        "<div><span style='display:none'>preheader</div>Real text", "Real text", "preheader"),
    "hidden div ended by its cell": (
        "<table><tr><td><div style='display:none'>preheader</td><td>Real text</td></tr></table>",
        "Real text", "preheader"),
    "script holding a <": (
        "<p>Hello</p><script>if (a<b) {x()}</script><p>My order 123 never arrived.</p>",
        "My order 123 never arrived.", "x()"),
    "script writing an end tag": (
        "<p>a</p><script>if (a<b) { document.write('</p>leak'); }</script><p>Real text</p>", "Real text", "leak"),
    "style holding a <": ("<style>/* 600px<width */ p {margin: 0}</style>Real text", "Real text", "margin"),
}


@pytest.mark.parametrize("markup, shown, hidden", CASES.values(), ids=CASES.keys())
def test_hidden_content_ends_where_browsers_end_it(markup: str, shown: str, hidden: str | None) -> None:
    text = html_to_text(markup)
    assert shown in text
    assert hidden is None or hidden not in text


def test_what_implied_end_tags_leave_alone() -> None:
    # A cell of a table nested in a hidden cell does not end the hidden one.
    assert html_to_text("<table><tr><td style=display:none><table><tr><td>inner<td>inner too</table>"
                        "still hidden<td>Real</table>") == "Real"
    # Nor does an end tag that matches nothing open (browsers ignore it).
    assert html_to_text("<div style='display:none'><span>pre</b>still hidden</span></div>Real") == "Real"
    assert html_to_text("<div style=display:none><div>x</div>y</div>z") == "z"
    assert html_to_text("A<div style='display:none'>x</div>B") == "AB"  # display:none leaves no line break
    assert html_to_text("<p>a</p><p style=display:none>b</p><p>c</p>") == "a\n\nc"
    assert html_to_text("<p>a<SCRIPT>if (a<b) x()</SCRIPT >b") == "ab"


def test_html_only_mail_without_head_end_tag_keeps_its_text() -> None:
    body = "<html><head><meta charset=utf-8><title>Support request</title>\r\n<body><p>My printer is on fire.</p>"
    raw = ("From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + body).encode()
    assert parse_mail(raw).text == "My printer is on fire."


def test_links_that_do_not_nest_each_show_their_target() -> None:
    # A new <a> ends the open one, as in browsers.
    assert html_to_text("<a href='https://a.example/'>one<a href='https://b.example/'>two</a>") == \
        "one <https://a.example/>two <https://b.example/>"


@pytest.mark.parametrize("markup, text", [
    # A link whose text is an address shows its real target when that is another one (phishing, trackers).
    ("<a href='https://phish.example/login'>https://bank.example/login</a>",
     "https://bank.example/login <https://phish.example/login>"),
    ("<a href='https://t.example/c/123'>www.shop.example</a>", "www.shop.example <https://t.example/c/123>"),
    # Text that says where the link goes needs nothing more.
    ("<a href='https://bank.example/login'>https://bank.example/login</a>", "https://bank.example/login"),
    ("<a href='https://www.shop.example/'>www.shop.example</a>", "www.shop.example"),
    ("<a href='mailto:help@shop.example'>help@shop.example</a>", "help@shop.example"),
    ("<a href='https://shop.example/faq'>our FAQ</a>", "our FAQ <https://shop.example/faq>"),
    # A mailto link with a query is usable only as the URI it is.
    ("<a href='mailto:support+l4@shop.example?subject=Helpful'>Yes</a>",
     "Yes <mailto:support+l4@shop.example?subject=Helpful>"),
])
def test_a_link_shows_where_it_really_goes(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize("style", ["white-space: pre-wrap", "WHITE-SPACE:pre", "white-space: pre-line"])
def test_text_styled_to_keep_its_line_breaks_keeps_them(style: str) -> None:
    """ticketd's own HTML templates show an agent's words so: a text part made from them kept one line."""
    markup = (f'<p>Hello,</p><div style="{style}">Please do this:\n1. Unplug it\n2. Plug it back in\n\nBye</div>'
              "<p>after  the\nblock</p>")
    assert html_to_text(markup) == \
        "Hello,\n\nPlease do this:\n1. Unplug it\n2. Plug it back in\n\nBye\n\nafter the block"


def test_an_element_styled_pre_ends_with_the_element_that_holds_it() -> None:
    # The <p> left open is ended by the </div> around it; the layout ends there too.
    assert html_to_text('<div><p style="white-space:pre-wrap">a\nb</div>c\nd') == "a\nb\nc d"


def test_the_signature_separator_keeps_its_space() -> None:
    """RFC 3676 section 4.3: "-- " (with the space) starts a signature; "--" is just dashes."""
    assert html_to_text("<p>Thanks</p><p>-- <br>Alice</p>") == "Thanks\n\n-- \nAlice"
    assert html_to_text("<p>--<br>x</p>") == "--\nx"


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fails the block once it runs longer than `seconds`, so a quadratic regression cannot hang the run."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"over {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cpu_seconds(markup: str) -> float:
    """The best of two runs of html_to_text, in CPU time: other work on the machine does not count."""
    return _cpu_seconds_of(html_to_text, markup)


def _cpu_seconds_of(convert, markup: str) -> float:
    """The best of two runs of `convert`, in CPU time."""
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        convert(markup)
        best = min(best, time.process_time() - start)
    return best


SHAPES = {
    "empty paragraphs": "<p>",
    "paragraphs": "<p>x",
    "nested table rows": "<div><table><tr><td><span style='x'>word &amp; more</span></td></tr></table></div>\n",
    "links on one line": "<a href='https://example.com/'>link</a> ",
    "a '<' that opens no tag, again and again": "<ab",
    "a doctype's '<!' that is never closed, again and again": "<!x",
}


@pytest.mark.parametrize("unit", SHAPES.values(), ids=SHAPES.keys())
def test_time_grows_linearly(unit: str) -> None:
    small = unit * (100_000 // len(unit))
    with _deadline(60):
        ratio = _cpu_seconds(small * 4) / max(_cpu_seconds(small), 1e-3)
    assert ratio < 8  # four times the input: about 4 if linear, 16 if quadratic


@pytest.mark.parametrize("markup", ["<p>Hello</p><a" + "b" * 200_000, "<ab" * 70_000],
                         ids=["one '<' before a long word", "many '<' and no '>'"])
def test_a_tag_never_closed_is_read_and_its_depth_counted_in_linear_time(markup: str) -> None:
    """Each character after such a "<" was tried again for the tag's name: 20 kB took seconds."""
    from ingest.html_clean import clean_html

    with _deadline(30):   # seconds on a loaded machine; minutes when quadratic
        assert "Hello" in html_to_text(markup) or markup.startswith("<ab")
        clean_html(markup)


def test_two_megabytes_of_paragraphs_convert() -> None:
    markup = "<p>x" * 500_000
    with _deadline(30):  # seconds on a loaded machine; it took hours when quadratic
        text = html_to_text(markup)
    assert text == "\n\n".join(["x"] * 500_000)


def test_html_nested_past_any_real_mail_is_kept_as_text_without_sanitising_it() -> None:
    """nh3 takes time growing with the square of the depth: a hostile mail held processing for minutes."""
    from ingest.html_clean import MAX_DEPTH, clean_html

    def nested(depth: int) -> str:
        return "<div>" * depth + "<script>alert(1)</script>deep" + "</div>" * depth

    depth = MAX_DEPTH - 1   # and the <script>
    assert clean_html(nested(depth)) == "<div>" * depth + "deep" + "</div>" * depth
    assert clean_html(nested(MAX_DEPTH)) is None
    # Paragraphs and list items left open, and void elements, are no depth.
    assert clean_html("<p>x<br><li>y" * 5000) is not None
    with _deadline(60):
        ratio = _cpu_seconds_of(clean_html, nested(120_000)) / max(_cpu_seconds_of(clean_html, nested(30_000)), 1e-3)
    assert ratio < 8   # four times the depth: about 4 if linear, 16 if quadratic
    raw = ("From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + nested(120_000)).encode()
    assert parse_mail(raw).text == "deep"   # agents still read what it says


def test_remote_images_are_taken_out_of_the_kept_html():
    """A tracking pixel kept in the sanitised HTML told its sender when an agent read the mail."""
    from ingest.html_clean import clean_html

    kept = clean_html('<p>Hi<img src="https://tracker.example/p.gif?id=1" width="1" height="1">'
                      '<img srcset="https://tracker.example/2x.gif 2x"><img src="cid:logo@x">'
                      '<a href="https://example.org/manual">manual</a></p>')
    assert "tracker.example" not in kept
    assert 'src="cid:logo@x"' in kept and 'href="https://example.org/manual"' in kept


def test_html_too_deep_to_keep_is_logged_with_the_mail_it_came_in(make_app, sqlite_url, caplog):
    """The warning named no mail: an admin could not tell which customer's HTML was kept as text only."""
    import logging

    from ingest.html_clean import MAX_DEPTH
    from tests.desk import build_mail, open_desk

    caplog.set_level(logging.WARNING, logger="ticketd.parse")
    desk_gen = open_desk(make_app, sqlite_url)
    desk = next(desk_gen)
    try:
        msg = build_mail("cust@example.org", "Deep.\n",
                         html="<div>" * (MAX_DEPTH + 1) + "Deep." + "</div>" * (MAX_DEPTH + 1))
        desk.send(msg)
        assert desk.ticket()["subject"] == "Printer on fire"
        [raw_id] = [m["raw_mail_id"] for m in desk.messages(desk.ticket()["id"])]
        assert (f"the HTML part of raw mail {raw_id} (Message-ID {msg['Message-ID'].strip('<>')}) nests deeper "
                f"than {MAX_DEPTH} elements: kept as text only") in caplog.text
    finally:
        desk_gen.close()
