"""HTML lists made into text read as the reader saw them: numbers stay, a bullet stays beside its words."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text
from ingest.parse import parse_mail


@pytest.mark.parametrize("markup, text", [
    ("<ol><li>Unplug it</li><li>Wait ten seconds</li><li>Plug it in</li></ol>",
     "1. Unplug it\n2. Wait ten seconds\n3. Plug it in"),
    # Items left open, and a list that counts from elsewhere.
    ("<ol start=4><li>four<li>five</ol>", "4. four\n5. five"),
    # Each list counts on its own, a nested one too.
    ("<ol><li>a<ul><li>dot</ul><li>b</ol><ol><li>c</ol>", "1. a\n\n- dot\n\n2. b\n\n1. c"),
    ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
])
def test_a_numbered_list_keeps_its_numbers(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize("markup, text", [
    # Outlook on the web wraps each item's words in a <div>; many editors in a <p>.
    ('<ul><li style="x"><div role="presentation">first</div></li><li><div>second</div></li></ul>',
     "- first\n- second"),
    ("<ol><li><p>first</p></li><li><p>second</p></li></ol>", "1. first\n\n2. second"),
    ("<ul><li>\n  <div>spaced</div>\n</li></ul>", "- spaced"),
])
def test_an_item_holding_a_block_keeps_its_bullet_beside_its_words(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_html_only_mail_with_steps_is_read_with_their_numbers() -> None:
    body = ("<div dir=ltr><div>Hi,</div><div>I did this:</div><ol><li><div>Reset the router</div></li>"
            "<li><div>Called the hotline</div></li></ol><div>Step 2 did not help.</div></div>")
    raw = ("From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + body).encode()
    assert parse_mail(raw).text == \
        "Hi,\nI did this:\n\n1. Reset the router\n2. Called the hotline\n\nStep 2 did not help."
