"""Read a plain-text bounce (qmail, Exim, Postfix without RFC 3464) into what a DSN would claim (pure).

Like outbound.dsn, nothing here is proof: outbound.bounces links the result
to our mail only when it names a Message-ID we signed.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message

from ingest.headers import address_pairs
from outbound.dsn import DeliveryReport, field
from ticketd.domain.loops import POSTMASTER, is_null_path

# RFC 5321 section 4.5.5: a non-delivery notification goes out with the null
# reverse-path; mail systems sign it MAILER-DAEMON or postmaster (RFC 5321
# section 4.5.1), Gmail and sendmail "Mail Delivery Subsystem", Exim and
# Postfix "Mail Delivery System".
_SYSTEM_NAMES = ("mail delivery subsystem", "mail delivery system")

_ANGLE = re.compile(r"<([^<>\s]+)>")
# RFC 5322 section 3.6.8: a field name is printable ASCII but the colon.
_FIELD = re.compile(r"[!-9;-~]+:")
_MESSAGE_ID_FIELD = re.compile(r"message-id:", re.IGNORECASE)

# qmail ("<addr>:" then its reason), Postfix ("<addr>: host … said: 550 …",
# "<addr> (expanded from <alias>): …"), sendmail ("<addr>" then "(reason: …)").
_ANGLED_RECIPIENT = re.compile(
    r"^\s*<([^<>\s@]+@[^<>\s@]+)>\s*(?:\(expanded from:?\s*<([^<>\s@]+@[^<>\s@]+)>\))?\s*:?\s*(.*)$", re.IGNORECASE)
# Exim lists each failed address indented by two, its reason below it deeper,
# after "The following address(es) failed:"; sendmail after "----- The
# following addresses had permanent fatal errors -----".
_FAILED_LIST = re.compile(r"address(?:\(es\)|es)? failed:|had permanent (?:fatal|delivery) errors", re.IGNORECASE)
_LISTED_RECIPIENT = re.compile(r"^ {1,3}<?([^<>\s@]+@[^<>\s@:]+)>?:?\s*$")
# After an alias the address we sent to is the one the failed address came from.
_ALIAS_OF = re.compile(r"^\s*\(?(?:generated (?:by|from)|expanded from:?)\s*<?([^<>\s()@]+@[^<>\s()@]+)>?\)?\s*$",
                       re.IGNORECASE)
# Notices that are no failure: Postfix's and sendmail's delay warnings, Exim's
# "has not yet been delivered", a success notice. They name recipients the
# same way, and must mark none bounced.
_NOT_A_FAILURE = re.compile(r"warning only|not yet been delivered|still undelivered|will be retried"
                            r"|will keep trying|attempts will continue|successfully delivered", re.IGNORECASE)
# RFC 3463 enhanced status code, not a piece of an IP address.
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_DIAGNOSTIC_CHARS = 500
# RFC 5322 section 2.1.1: a line is at most 998 characters.
_LONGEST_LINE = 998


def _from_mail_system(envelope_from: str | None, from_header: str | None) -> bool:
    """Whether a mail comes from a mail system: the null reverse-path, or From one by its address or name."""
    if is_null_path(envelope_from):
        return True
    name, address = (address_pairs(from_header or "") or [("", "")])[0]
    local = address.split("@", 1)[0].lower()
    return local.startswith("mailer-daemon") or local == POSTMASTER or " ".join(name.lower().split()) in _SYSTEM_NAMES


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    try:
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:   # a charset Python does not know: the ASCII we look for reads alike
        return data.decode("utf-8", "replace")


def _parts(msg: Message) -> tuple[list[str], list[str]]:
    """The bounce's own texts, and the Message-IDs of the messages or headers it returns as parts.

    A returned message is not walked into: its own text is the customer's mail, not the bounce's.
    """
    texts: list[str] = []
    ids: list[str] = []
    for part in msg.get_payload() if msg.is_multipart() else [msg]:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            returned = part.get_payload()   # the email package holds the message as a list of one
            if isinstance(returned, list) and returned:
                ids += _ANGLE.findall(field(returned[0], "Message-ID"))
        elif part.is_multipart():
            more_texts, more_ids = _parts(part)
            texts += more_texts
            ids += more_ids
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            ids += _ANGLE.findall(field(email.message_from_string(_text(part)), "Message-ID"))
        elif ctype == "text/plain":
            texts.append(_text(part))
    return texts, ids


def _pasted_message_id(lines: list[str]) -> tuple[int, list[str]]:
    """Where the returned message's header block starts in a bounce's text, and its Message-ID.

    qmail ("--- Below this line is a copy of the message."), Exim ("------
    This is a copy of the message, including all the headers. ------") and
    others paste the message they return below their words: a block of
    header fields. Only such a field counts, never "Message-ID" in a
    sentence. (len(lines), []) when there is none.
    """
    start = None   # of the run of header lines being read
    for i, line in enumerate(lines):
        if start is not None and line[:1] in (" ", "\t") and line.strip():
            continue   # a folded field (RFC 5322 section 2.2.3)
        if not _FIELD.match(line):
            start = None
            continue
        start = i if start is None else start
        if _MESSAGE_ID_FIELD.match(line):
            value = " ".join([line.split(":", 1)[1]] + [
                more for more in lines[i + 1:i + 3] if more[:1] in (" ", "\t")])
            if ids := _ANGLE.findall(value):
                return start, ids[:1]
    return len(lines), []


def _failures(lines: list[str]) -> list[tuple[list[str], str]]:
    """Each failed recipient a bounce's words name, with the addresses it was sent as, and its reason."""
    found: list[tuple[list[str], list[str]]] = []
    current: tuple[list[str], list[str]] | None = None
    in_failed_list = False
    for line in lines:
        if not line.strip():
            current = None
            continue
        if len(line) > _LONGEST_LINE:
            continue   # no mail system writes such a line; a forged one is not read into a reason
        if _FAILED_LIST.search(line):
            in_failed_list, current = True, None
        elif in_failed_list and (m := _LISTED_RECIPIENT.match(line)):
            current = ([m.group(1)], [])
            found.append(current)
        elif current is not None and (m := _ALIAS_OF.match(line)):
            current[0].append(m.group(1))
        elif current is not None and line[:1] in (" ", "\t"):
            current[1].append(line)   # Postfix folds a reason, "<addr>: …" in it too
        elif m := _ANGLED_RECIPIENT.match(line):
            current = ([a for a in m.group(1, 2) if a], [m.group(3)])
            found.append(current)
        elif current is not None:
            current[1].append(line)   # qmail writes the reason below the address, unindented
    return [(addresses, " ".join(" ".join(reason).split())[:_DIAGNOSTIC_CHARS]) for addresses, reason in found]


def read_plain_bounce(raw: bytes, envelope_from: str | None) -> DeliveryReport | None:
    """What a plain-text bounce from a mail system claims, or None if it is none or names no returned message.

    `envelope_from`: the SMTP MAIL FROM, else Return-Path; None if unknown.
    A person's mail quoting our mail's headers (a forward with all headers)
    is no bounce: only a mail system's is read.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() == "multipart/report" or not _from_mail_system(envelope_from, field(msg, "From")):
        return None   # a report is outbound.dsn's
    texts, ids = _parts(msg)
    failures: list[tuple[list[str], str]] = []
    for text in texts:
        lines = text.splitlines()
        pasted_at, pasted = _pasted_message_id(lines)
        ids += pasted
        words = lines[:pasted_at]   # the bounce's own words, not the returned mail's
        if not any(_NOT_A_FAILURE.search(line) for line in words):
            failures += _failures(words)
    # Some mail systems name the returned message in In-Reply-To or References too, as some DSNs do.
    ids += _ANGLE.findall(field(msg, "In-Reply-To")) + _ANGLE.findall(field(msg, "References"))
    if not ids:
        return None
    failed = [address.lower() for addresses, _ in failures for address in addresses]
    diagnostic = failures[0][1] if failures else ""
    status = m.group(1) if (m := _STATUS.search(diagnostic)) else ""
    return DeliveryReport(list(dict.fromkeys(i.lower() for i in ids)), list(dict.fromkeys(failed)), status,
                          diagnostic)
