"""A link's real target shows in the text even when its href is padded the way browsers ignore."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text


@pytest.mark.parametrize("href", [
    " https://phish.example/login",
    "\nhttps://phish.example/login\n",
    "&#32;https://phish.example/login",
    "ht\ttps://phish.example/login",
    "https:\n//phish.example/login",
    "\x01https://phish.example/login",
])
def test_padding_an_href_does_not_hide_where_the_link_goes(href: str) -> None:
    # A browser strips leading and trailing controls and spaces, and tabs and newlines anywhere,
    # so each of these opens phish.example while the text names the bank.
    text = html_to_text(f'<p>Log in at <a href="{href}">https://bank.example/login</a></p>')
    assert text == "Log in at https://bank.example/login <https://phish.example/login>"
