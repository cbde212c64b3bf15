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
    status: str = ""                                                # e.g. 5.1.1
    diagnostic: str = ""


def _ids(value: str | None) -> list[str]:
    return [m.lower() for m in _ANGLE.findall(value or "")]


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


def _status_blocks(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses message/delivery-status as header blocks
        return [{k.lower(): str(v) for k, v in block.items()} for block in payload]
    text = payload if isinstance(payload, str) else ""
    return [_fields(b) for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()]


def read_report(raw: bytes) -> DeliveryReport | None:
    """The failures a DSN reports, or None if the mail is not a failure report."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        return None
    ids: list[str] = []
    failed: list[str] = []
    status = diagnostic = ""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            for block in _status_blocks(part):
                action = block.get("action", "").strip().lower()
                # RFC 3464 2.3.1/2.3.2: after an alias or forward, Final-Recipient
                # is the rewritten address; Original-Recipient the one we sent to.
                named = [block.get(f) for f in ("final-recipient", "original-recipient") if block.get(f)]
                if action == "failed" and named:
                    failed += [r.rpartition(";")[2].strip().strip("<>").lower() for r in named]
                    status = status or block.get("status", "").strip()
                    diagnostic = diagnostic or " ".join(block.get("diagnostic-code", "").split())
        elif ctype in ("message/rfc822", "message/global", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                ids += _ids(payload[0].get("Message-ID"))
            elif isinstance(payload, str):
                ids += _ids(email.message_from_string(payload).get("Message-ID"))
    if not failed:
        return None  # "delayed" or "delivered" reports are not bounces
    # Some reporters keep only In-Reply-To/References naming the original.
    ids += _ids(msg.get("In-Reply-To")) + _ids(msg.get("References"))
    return DeliveryReport(list(dict.fromkeys(ids)), list(dict.fromkeys(failed)), status, diagnostic)
