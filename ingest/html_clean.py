"""Sanitised HTML of a mail body, safe to show to an agent (nh3, an allow-list cleaner)."""

from __future__ import annotations

import nh3

# Inline images stay referable by cid:; every other scheme that could run
# code or phone home (javascript:, remote images via data: tricks) goes.
_URL_SCHEMES = {"http", "https", "mailto", "cid"}


def clean_html(markup: str | None) -> str | None:
    """The HTML with scripts, styles, event handlers and unsafe URLs removed."""
    if not markup:
        return None
    return nh3.clean(markup, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer nofollow")
