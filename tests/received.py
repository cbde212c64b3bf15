"""A stored mail without the Received line the receiver put on top (ingest/trace.py): the bytes as sent."""

from __future__ import annotations

import re

# Ours only: `Received: from ... (ticketd) with PROTOCOL[ for <rcpt>]; date`, folded, in the mail's line ending.
_OURS = re.compile(rb"\AReceived: from [^\r\n]*\r?\n\tby [^\r\n]* \(ticketd\) with [A-Z0-9]+"
                   rb"(?:\r?\n\tfor <[^\r\n]*>)?; [^\r\n]*\r?\n")


def as_sent(raw: bytes) -> bytes:
    """`raw` without our Received line; fails when the line is not there."""
    found = _OURS.match(raw)
    assert found is not None, f"no Received line of ours on top: {raw[:200]!r}"
    return raw[found.end():]
