"""Whether a mail names an address anywhere a reader would see it: headers or text, decoded (pure)."""

from __future__ import annotations

import email
import email.policy

from ingest import smime
from ingest.headers import decode_header_value


def names_address(raw: bytes, address: str, _layers: int = smime.MAX_LAYERS) -> bool:
    """Whether `address` (lower case) appears in `raw`'s headers or text parts, in any case.

    Decoded as a reader sees it: a quoted-printable soft break can split an
    address over two lines of the bytes, base64 hides it, and RFC 2047 words
    hide it in a header; an opaquely signed mail holds its text inside the
    signature, where ticketd reads it too (ingest.smime). A mail that does
    not parse is searched as bytes.
    """
    if address.encode("utf-8") in raw.lower():
        return True
    try:
        mail = email.message_from_bytes(raw, policy=email.policy.compat32)
        for part in mail.walk():
            if any(address in decode_header_value(value).lower() for value in part.values()):
                return True
            if _layers and smime.may_be_signed(part):
                content = smime.signed_content(part.get_payload(decode=True) or b"")
                if content is not None and names_address(content, address, _layers - 1):
                    return True
            if part.get_content_maintype() != "text":
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = payload.decode(charset, errors="replace")
                except LookupError:      # a charset Python does not know
                    text = payload.decode("utf-8", errors="replace")
                if address in text.lower():
                    return True
    except Exception:   # noqa: BLE001 -- a mail too broken to walk was searched as bytes above
        return False
    return False
