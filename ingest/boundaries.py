"""The parts of a multipart entity whose boundary is missing or wrong, found by the one its body uses. Pure: no I/O.

A multipart Content-Type without its boundary parameter (a gateway that
cut a folded header, a script that wrote the type by hand) or with one the
body never uses (another case, a quoting slip) leaves the stdlib nothing to
split at: the whole body becomes one text, and a part sent base64 or
quoted-printable, the customer's words among them, is shown encoded.
RFC 2046 section 5.1.1 says what a delimiter line looks like, so when the
body has one followed by a part's header, that is the boundary the sender
used, and the body is read again with it. A body with no such line is left
as the text it is.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re

from ingest.headers import MEDIA_SUBTYPE

# RFC 2046 section 5.1.1: "--", then 1 to 70 bchars not ending in a space,
# perhaps transport padding; the body part after it opens with its header
# fields (a part with none, typed by default, is not told from text here).
_BCHARS = r"0-9A-Za-z'()+_,\-./:=?"
_DELIMITER = re.compile(rf"^--([{_BCHARS} ]{{0,69}}[{_BCHARS}])[ \t]*\r?\n(?=content-[a-z0-9-]*[ \t]*:)",
                        re.IGNORECASE | re.MULTILINE)
# Each reading parses what is left of the body again: a handful covers every
# real mail, and a crafted one nesting such entities cannot make it costly.
_MAX_READINGS = 8


def used_boundary(body: str) -> str | None:
    """The boundary of the first delimiter line in `body` that a part's header follows, if any."""
    match = _DELIMITER.search(body)
    return match.group(1) if match else None


def recover_parts(msg: email.message.Message, policy: email.policy.Policy) -> None:
    """Give each multipart entity the stdlib left as text the parts its body holds (in place).

    Attached mails (message/*) are not entered: their stored bytes are
    written from what was parsed, and must stay as they came.
    """
    readings = 0
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        payload = part._payload  # noqa: SLF001 -- the stored payload, as ingest.parse reads it
        if ctype.startswith("message/"):
            continue
        if isinstance(payload, list):
            stack.extend(child for child in payload if isinstance(child, email.message.Message))
            continue
        if not ctype.startswith("multipart/") or not isinstance(payload, str) or readings >= _MAX_READINGS:
            continue
        boundary = used_boundary(payload)
        if boundary is None:
            continue
        readings += 1
        # The type as a header again, its subtype a name of RFC 6838's characters: a header block the parser
        # had to repair may have folded a stray line, 8-bit bytes and all, into the Content-Type's subtype.
        subtype = ctype.partition("/")[2]
        subtype = subtype if MEDIA_SUBTYPE.fullmatch(subtype) else "mixed"
        head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'.encode()
        reread = email.message_from_bytes(head + payload.encode("utf-8", "surrogateescape"), policy=policy)
        children = reread._payload  # noqa: SLF001
        if not isinstance(children, list) or not children:
            continue
        part._payload = children  # noqa: SLF001
        part.preamble, part.epilogue = reread.preamble, reread.epilogue
        stack.extend(child for child in children if isinstance(child, email.message.Message))
