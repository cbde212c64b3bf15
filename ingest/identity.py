"""Whether two mails that share a dedupe key are one mail delivered twice, and where a different one is kept."""

from __future__ import annotations

import calendar
import email.parser
import email.utils
import hashlib
from dataclasses import dataclass

from ingest.headers import parse_addresses

# The head is all the identity needs. Reading at most this much of a stored
# mail (and of a new one, so both are judged alike) bounds what a collision
# costs with mail at the size limit; real heads are far smaller (Postfix
# keeps at most 100 KiB of one, its header_size_limit).
HEAD_BYTES = 1 << 20

# The dedupe key's column is VARCHAR(128) (schema.sql); a derived key adds
# at most two parts of this many hex digits, each after a "/".
_PART = 16
_KEY_WIDTH = 128

# Where a mailing list that rewrites From for DMARC (RFC 7960 section 4.1.3)
# leaves the author: Mailman's munge_from puts them in Reply-To or Cc,
# Google Groups in X-Original-From.
_ORIGINAL_SENDER_FIELDS = ("reply-to", "cc", "x-original-from")

_HEAD_PARSER = email.parser.BytesParser()   # compat32, as dedupe_key parses


@dataclass(frozen=True)
class Identity:
    """What tells two mails apart when their Message-ID and body are the same."""
    date: str | None                 # "t:<POSIX seconds>", or "s:<the value>" when unparseable
    senders: frozenset[str]          # From, lower-case addr-specs
    original_senders: frozenset[str]  # Reply-To, Cc, X-Original-From
    through_list: bool = False       # List-Id or Precedence: list (RFC 2919): a list relayed it


def head_of(raw: bytes) -> bytes:
    """The header section of a mail (or of its first HEAD_BYTES), line ends made LF."""
    text = raw[:HEAD_BYTES].replace(b"\r\n", b"\n")
    if text.startswith(b"\n"):
        return b""
    return text.partition(b"\n\n")[0]


def identity(raw: bytes, envelope_from: str | None = None) -> Identity:
    """The identity of a mail, from its head (and the envelope's MAIL FROM, when SMTP brought it); trace
    fields and folding do not matter.

    A mail whose From names nobody (RFC 5322 requires one; scripts and
    robots leave it out) is told apart by who else sent it, as its
    requester is found: Sender, then the envelope's MAIL FROM, then the
    Return-Path a delivering server wrote from it (the IMAP route's copy of
    the same mail). Without this two such mails from two people, alike in
    every header, were one mail, and the second customer's was lost.
    """
    msg = _HEAD_PARSER.parsebytes(head_of(raw) + b"\n\n", headersonly=True)
    fields: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        fields.setdefault(name.strip().lower(), []).append(value)
    originals = [v for name in _ORIGINAL_SENDER_FIELDS for v in fields.get(name, [])]
    senders = (_addresses(fields.get("from", [])) or _addresses(fields.get("sender", []))
               or _addresses([envelope_from] if envelope_from else []) or _addresses(fields.get("return-path", [])))
    return Identity(
        date=_date_token((fields.get("date") or [None])[0]),
        senders=senders,
        original_senders=_addresses(originals),
        through_list=bool(fields.get("list-id"))
        or any(v.strip().lower() == "list" for v in fields.get("precedence", [])),
    )


def _addresses(values: list[str]) -> frozenset[str]:
    return frozenset(addr for _name, addr in parse_addresses(values))


def _date_token(value: str | None) -> str | None:
    """The Date as an instant, so that a relay rewriting its spelling changes nothing.

    RFC 5322 section 3.6.1: the origination date is when the author's
    client submitted the mail, so it is the same on every route and differs
    when a client reuses a Message-ID (RFC 5322 section 3.6.4 asks it to be
    unique) for a later mail. A value that does not parse is compared as
    written, without its folding.
    """
    if value is None:
        return None
    text = " ".join(value.split())
    if not text:
        return None
    parsed = email.utils.parsedate_tz(text)
    if parsed is not None:
        try:
            # No zone (or -0000, RFC 5322 section 3.3) is taken as UTC, not
            # as this host's zone: the same mail must give the same instant
            # wherever it is judged.
            return f"t:{calendar.timegm(parsed[:6] + (0, 0, 0)) - (parsed[9] or 0)}"
        except (ValueError, OverflowError, IndexError):
            pass
    return f"s:{text}"


def same_mail(a: Identity, b: Identity) -> bool:
    """Whether two mails with one dedupe key are one mail that came twice.

    Both already have the same Message-ID and body. Trace fields differ
    between routes and are not read. The Date is the first discriminator: a
    broken client reusing a Message-ID does so at another time. It is left
    out when either mail has none (an MTA may add a missing Date, RFC 5321
    section 6.4), and then the From decides alone: two customers each
    answering "Thanks" are two mails. The Subject is not read: a mailing
    list adds its prefix. From addresses that differ still name one mail
    when one mail's sender is named in the other's Reply-To, Cc or
    X-Original-From: a list that rewrites From for DMARC keeps the author
    there. When in doubt the mails are different: a mail kept twice costs a
    merge, a mail dropped as a duplicate is lost.
    """
    if a.date is not None and b.date is not None and a.date != b.date:
        return False
    return _same_author(a, b)


def _same_author(a: Identity, b: Identity) -> bool:
    if a.senders == b.senders:
        return True
    return bool(a.senders) and bool(b.senders) and (
        a.senders <= b.original_senders or b.senders <= a.original_senders)


def candidate_keys(key: str, ident: Identity) -> list[str]:
    """The keys a mail may be stored under, in the order they are tried.

    The dedupe key first, as always; then the key with the Date's hash,
    for a different mail that reuses the Message-ID at another time; then
    with the Date's and From's hash, for a different author at the same
    time. A mail is only ever stored under one of its own candidates, so a
    redelivery finds it; a list's DMARC-rewritten copy of a mail kept under
    the second key finds it there too, as it has the same Date. The third
    key can only hold a mail with this Date and From, which is this mail.
    """
    base = key[:_KEY_WIDTH - 2 * (_PART + 1)]
    date_part = _digest(ident.date or "-")
    sender_part = _digest(",".join(sorted(ident.senders)) or "-")
    return [key, f"{base}/{date_part}", f"{base}/{date_part}/{sender_part}"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_PART]
