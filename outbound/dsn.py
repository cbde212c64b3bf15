"""Read a delivery status notification (RFC 3464) into what it claims about our mail (pure).

Anyone can send a report: nothing here is proof. outbound.bounces links one
to our mail only when it names a Message-ID we signed.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

_ANGLE = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class DeliveryReport:
    original_message_ids: list[str] = field(default_factory=list)   # without brackets, lower case
    failed_recipients: list[str] = field(default_factory=list)      # lower case; Final- and Original-Recipient
    status: str = ""                                                # e.g. 5.1.1, of a failure if any
    diagnostic: str = ""


def _ids(value: str | None) -> list[str]:
    return [m.lower() for m in _ANGLE.findall(value or "")]


def field(msg: Message, name: str) -> str:
    """A header field of a message the compat32 parser read, as text ("" when absent).

    compat32 gives a field holding 8-bit bytes as an email.header.Header, which
    no str function takes: one such byte in a bounce's From or In-Reply-To
    quarantined the whole bounce."""
    value = msg.get(name)
    return "" if value is None else _text(value)


def _fields(block: str) -> dict[str, str]:
    """RFC 3464 section 2.1: header-like fields, continuation lines folded."""
    parsed: dict[str, str] = {}
    last = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and last:
            parsed[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            parsed.setdefault(last, value.strip())
    return parsed


def _text(value) -> str:
    """A header value or body the compat32 parser read from bytes, with its raw UTF-8 (RFC 6532) as text."""
    text = str(value)
    try:
        return text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text   # already text


def _body_text(part: Message) -> str:
    """A part's body as UTF-8 text: a global report (RFC 6533) carries raw UTF-8 in it."""
    data = part.get_payload(decode=True)   # bytes as they came (get_payload() alone replaces 8-bit ones)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


def _blocks_of(text: str) -> list[dict[str, str]]:
    return [_fields(b) for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()]


def _status_blocks(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _blocks_of(_body_text(part))
    # message/delivery-status: the email package parses each block as headers.
    # message/global-delivery-status (RFC 6533) it parses as one message: the
    # per-message block its headers, the per-recipient blocks its body.
    blocks = []
    for item in payload:
        blocks.append({k.lower(): _text(v) for k, v in item.items()})
        if not item.is_multipart():
            blocks += _blocks_of(_body_text(item))
    return blocks


# RFC 6533 section 3: a "utf-8" address type writes some characters as \x{HHHH}.
_UTF8_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _recipient(field_value: str) -> str:
    """The address of a Final- or Original-Recipient field ("type; address"), lower case."""
    kind, _, address = field_value.partition(";")
    address = address.strip().strip("<>")
    if kind.strip().lower() == "utf-8":
        address = _UTF8_ESCAPE.sub(lambda m: chr(min(int(m.group(1), 16), 0x10FFFF)), address)
    return address.lower()


def read_report(raw: bytes) -> DeliveryReport | None:
    """What a DSN reports (failures, and any other action: delayed, delivered, relayed, expanded), or a read
    receipt (no failure), or None if the mail is neither."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        return None
    ids: list[str] = []
    failed: list[str] = []
    reported = False   # a per-recipient block with an Action: failed, delayed, delivered, relayed, expanded
    status = diagnostic = ""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/disposition-notification", "message/global-disposition-notification"):
            # A read receipt (RFC 8098, RFC 6533) names the mail it is about in Original-Message-ID
            # (section 3.2.5), often alone: no threading field, a subject without our tag. It reports no
            # failure; naming our mail, it joins that mail's ticket rather than open one of its own.
            for block in _status_blocks(part):
                reported = reported or "disposition" in block
                ids += _ids(block.get("original-message-id"))
        elif ctype in ("message/delivery-status", "message/global-delivery-status"):
            for block in _status_blocks(part):
                action = block.get("action", "").strip().lower()
                reported = reported or bool(action)
                # RFC 3464 2.3.1/2.3.2: after an alias or forward, Final-Recipient
                # is the rewritten address; Original-Recipient the one we sent to.
                named = [block.get(f) for f in ("final-recipient", "original-recipient") if block.get(f)]
                if action == "failed" and named:
                    failed += [_recipient(r) for r in named]
                    status = status or block.get("status", "").strip()
                    diagnostic = diagnostic or " ".join(block.get("diagnostic-code", "").split())
        elif ctype in ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                ids += _ids(field(payload[0], "Message-ID"))
            elif isinstance(payload, str):
                ids += _ids(field(email.message_from_string(payload), "Message-ID"))
    if not reported:
        return None   # a multipart/report of another kind (a feedback report, RFC 5965) or without its status
    # Some reporters keep only In-Reply-To/References naming the original.
    ids += _ids(field(msg, "In-Reply-To")) + _ids(field(msg, "References"))
    return DeliveryReport(list(dict.fromkeys(ids)), list(dict.fromkeys(failed)), status, diagnostic)
