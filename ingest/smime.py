"""The mail inside an opaquely signed S/MIME mail (RFC 8551 section 3.5.2), read with asn1crypto. Pure: no I/O.

Outlook and other clients that sign "opaquely" send one
`application/pkcs7-mime; smime-type=signed-data` entity (smime.p7m) whose
CMS SignedData (RFC 5652 section 5) holds the real MIME entity: text,
files and all. The signature is not verified, on purpose: a certificate the
sender chose proves nothing to ticketd about the From address (an agent is
known by their signed reply address, never by a mail's own claims), so the
signed entity is read as any unsigned mail would be, with no more trust.
Encrypted mail (enveloped-data) cannot be read without the recipient's key.
"""

from __future__ import annotations

import email.message

from asn1crypto import cms

_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_ENCRYPTED = ("enveloped-data", "authenveloped-data")          # RFC 8551 section 3.2.2, RFC 5083
_ENCRYPTED_CMS = ("enveloped_data", "authenticated_enveloped_data")  # as asn1crypto names them
# A client's signature and one a mail gateway adds over it; more layers than
# that are no mail anyone writes, and the mail stays as it came.
MAX_LAYERS = 2


def is_smime(part: email.message.Message) -> bool:
    """An S/MIME entity: pkcs7-mime, or (RFC 8551 section 3.2.2) application/octet-stream named *.p7m."""
    ctype = part.get_content_type()
    if ctype in _TYPES:
        return True
    try:
        name = part.get_filename("") or ""
    except Exception:  # noqa: BLE001 -- a name too broken to read (bad RFC 2231 continuations) names nothing
        name = ""
    return ctype == "application/octet-stream" and str(name).strip().lower().endswith(".p7m")


def _smime_type(part: email.message.Message) -> str:
    return str(part.get_param("smime-type") or "").strip().lower()


def may_be_signed(part: email.message.Message) -> bool:
    """An S/MIME entity that says it is signed-data, or does not say what it is (older clients)."""
    return is_smime(part) and _smime_type(part) in ("signed-data", "")


def _content_info(der: bytes) -> cms.ContentInfo | None:
    try:
        info = cms.ContentInfo.load(der)
        info["content_type"].native  # noqa: B018 -- asn1crypto parses lazily: read it here, inside the try
    except Exception:  # noqa: BLE001 -- asn1crypto raises ValueError, TypeError, …: not CMS, kept as the file it is
        return None
    return info


def signed_content(der: bytes) -> bytes | None:
    """The MIME entity a CMS SignedData holds, or None: not CMS, not SignedData, or detached (no content)."""
    info = _content_info(der)
    if info is None or info["content_type"].native != "signed_data":
        return None
    try:
        encap = info["content"]["encap_content_info"]
        # RFC 8551 section 3.5.2: the signed MIME entity is id-data content.
        content = encap["content"].native if encap["content_type"].native == "data" else None
    except Exception:  # noqa: BLE001 -- damaged inside (a cut mail): the .p7m stays an attachment
        return None
    return content if isinstance(content, bytes) and content.strip() else None


def is_encrypted(part: email.message.Message, der: bytes) -> bool:
    """An S/MIME entity encrypted for its recipients: by its smime-type, or by its CMS type when it names none."""
    if not is_smime(part):
        return False
    smime_type = _smime_type(part)
    if smime_type:
        return smime_type in _ENCRYPTED
    info = _content_info(der)
    return info is not None and info["content_type"].native in _ENCRYPTED_CMS


def encrypted_note(filename: str) -> str:
    """The text of a mail ticketd cannot decrypt, so that the ticket says why it has no words."""
    return f"[encrypted with S/MIME, which ticketd cannot read: the mail is kept as it came, in {filename}]"


def _describes_entity(name: str) -> bool:
    return name.strip().lower().startswith("content-")   # RFC 2045 section 9: MIME header fields


def joined(outer: email.message.Message, inner: email.message.Message) -> email.message.Message:
    """The inner entity under the outer mail's headers.

    The outer Content-* fields describe the smime.p7m wrapper and go; the
    inner entity keeps only its own Content-* fields, as a header the
    sender's client put inside (RFC 8551 section 3.1 allows it, for header
    protection) must not make a second From or Subject beside the outer one.
    """
    kept = [(name, value) for name, value in inner.raw_items() if _describes_entity(name)]
    for name in set(inner.keys()):
        del inner[name]
    for name, value in [*((n, v) for n, v in outer.raw_items() if not _describes_entity(n)), *kept]:
        inner[name] = value
    inner.defects = outer.defects + inner.defects
    return inner
