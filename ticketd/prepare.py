"""What a raw mail tells without the database: parse, robot check, quote stripping, attachments to disk.

This is the CPU-heavy half of processing. It needs only the settings and
the signing keys, so it can run in another process (`ticketd.prepare_pool`)
while the processor writes the previous batch.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ingest.html_clean import clean_html
from ingest.match import is_our_message_id
from ingest.parse import MailTooComplex, ParsedMail, parse_mail
from ingest.quotes import own_reply
from ticketd.domain.loops import (
    auto_generated_reason,
    is_our_address,
    own_address_reason,
)
from ticketd.domain.own_list import is_own_list, robot_headers, writer_again
from ticketd.domain.signing import Signer
from ticketd.domain.tags import find_tags
from ticketd.settings import Settings
from ticketd.store.files import attachment_path, store_blob


def recipients(parsed: ParsedMail, envelope_to: list[str]) -> list[str]:
    """Every address the mail was delivered or written to, envelope first."""
    # The envelope (SMTP RCPT TO) is the most direct witness; IMAP mail only
    # has headers, where the MTA usually records it in Delivered-To.
    extra = [parsed.headers.get(h, "") for h in ("delivered-to", "x-original-to", "envelope-to")]
    return [*envelope_to, *parsed.to, *parsed.cc, *[e.strip("<> ").lower() for e in extra if e]]


@dataclass(frozen=True)
class Prepared:
    """What can be learned from a raw mail without the database: done before any lock."""
    raw_id: int
    raw: bytes
    parsed: ParsedMail
    envelope_to: list[str]
    robot_reason: str | None
    stripped: str
    attachments: list[dict]
    html: str | None = None   # the HTML part sanitised for agents (ingest.html_clean), made here, before any lock
    quoted_only: bool = False  # a reply with nothing of its own: `stripped` is then its whole text
    envelope_from: str | None = None   # SMTP MAIL FROM, else Return-Path; None when neither is known


@dataclass(frozen=True)
class Deferred:
    """A mail that cannot be prepared now for the desk's reason, not its own: it waits, it is not quarantined."""
    reason: str


class FilesUnwritable(Exception):
    """data_dir cannot take a mail's files: a full disk, a quota, a read-only or broken file system."""


# What preparing a raw mail gives: the mail prepared, Deferred, or the reason to quarantine it.
Preparation = Prepared | Deferred | str


def _parse(settings: Settings, raw: bytes) -> ParsedMail:
    try:
        return parse_mail(raw, max_depth=settings.max_mime_depth, max_parts=settings.max_mime_parts)
    except MailTooComplex as exc:
        raise MailTooComplex(f"mail refused by the MIME limits: {exc}") from exc


def attachment_rows(parsed: ParsedMail) -> list[dict]:
    """The mail's files as their attachment rows will say (the bytes are stored apart, by sha256)."""
    return [dict(filename=att.filename, content_type=att.content_type[:255], size=len(att.data),
                 sha256=att.sha256, content_id=att.content_id, inline=att.inline) for att in parsed.attachments]


def as_written(settings: Settings, parsed: ParsedMail) -> tuple[ParsedMail, Mapping[str, tuple[str, ...]]]:
    """The mail with its writer in From again and the fields the robot checks read (every value of each: a
    responder's marker may sit below a filter's field of the same name), when our own list (a Google Group at
    the support address) relayed it (ticketd.domain.own_list); as it came otherwise."""
    extra = settings.smtp.extra_addresses

    def ours(address: str) -> bool:
        return is_our_address(address, settings.support_address, extra)

    if not is_own_list(parsed.headers, [settings.support_address, *extra], ours):
        return parsed, parsed.header_values
    return writer_again(parsed, ours), robot_headers(parsed.header_values)


def prepare(settings: Settings, signer: Signer, row: dict) -> Prepared:
    """Parse, check for robots, strip quotes and store attachments (CPU and files only)."""
    raw = bytes(row["raw"])
    parsed = _parse(settings, raw)
    envelope_from = row["envelope_from"]
    if envelope_from is None and "return-path" in parsed.headers:
        envelope_from = parsed.headers["return-path"]
    parsed, robot_fields = as_written(settings, parsed)
    robot_reason = auto_generated_reason(robot_fields, envelope_from, parsed.from_addr, parsed.content_type)
    if is_our_message_id(signer, settings.support_domain, parsed.message_id):
        robot_reason = "our own mail reflected back"
    elif robot_reason is None and is_our_address(parsed.author, settings.support_address,
                                                 settings.smtp.extra_addresses):
        # A person in the shared mailbox (webmail), or any of our addresses: never answered, and a
        # new ticket's customer is whom it was written to (ticketd.conversation).
        robot_reason = own_address_reason(parsed.author)
    envelope_to = json.loads(row["envelope_to"] or "[]")
    # Only a mail that can thread into a ticket is a reply worth stripping;
    # a mail with none of the three threading signals always opens a ticket.
    local = settings.support_address.split("@", 1)[0] + "+"
    may_follow_up = bool(parsed.in_reply_to or parsed.references or find_tags(parsed.subject) or any(
        r.lower().startswith(local) for r in recipients(parsed, envelope_to)))
    own = own_reply(parsed.text) if may_follow_up else parsed.text.strip()
    html = clean_html(parsed.html, f"raw mail {row['id']} (Message-ID {parsed.message_id or 'none'})")
    # Last: a mail that fails before here leaves no file that no row will name.
    try:
        for att in parsed.attachments:
            store_blob(settings.attachments_dir, att.sha256, att.data)  # by content: idempotent
    except OSError as exc:
        # Files go by sha256 under our own directory: nothing the sender
        # chose is in the path, so the trouble is the disk's (ENOSPC,
        # EDQUOT, EROFS, EIO), and the mail must wait for it, not be shunted.
        raise FilesUnwritable(f"its files cannot be written under {settings.attachments_dir}: {exc}") from exc
    return Prepared(raw_id=row["id"], raw=raw, parsed=parsed, envelope_to=envelope_to, robot_reason=robot_reason,
                    stripped=own or parsed.text.strip(), attachments=attachment_rows(parsed),
                    html=html, quoted_only=not own and bool(parsed.text.strip()),
                    envelope_from=envelope_from)


def write_missing_files(settings: Settings, prepared: Prepared) -> int:
    """After the commit: write again the mail's files an erasure removed meanwhile (`ticketd.store.files`); how many.

    One stat per file; the mail is parsed again only when one is gone (a
    preparing process does not send the files' bytes back).
    """
    root = settings.attachments_dir
    missing = {a["sha256"] for a in prepared.attachments if not attachment_path(root, a["sha256"]).exists()}
    if missing:
        for att in prepared.parsed.attachments or _parse(settings, prepared.raw).attachments:
            if att.sha256 in missing:
                store_blob(root, att.sha256, att.data)
    return len(missing)


def failure_reason(exc: BaseException) -> str:
    """The quarantine reason for an exception being handled: its line, then the traceback."""
    return f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=8)


def prepare_or_reason(settings: Settings, signer: Signer, row: dict) -> Preparation:
    """`prepare`; Deferred when the desk cannot take the mail now; else the reason to quarantine it."""
    try:
        return prepare(settings, signer, row)
    except FilesUnwritable as exc:
        return Deferred(str(exc))
    except Exception as exc:
        return failure_reason(exc)


class PendingBatch(Protocol):
    def result(self) -> list[tuple[int, Preparation]]:
        """[(raw id, Prepared, Deferred or quarantine reason)] in the order the rows were given."""
        ...


class Preparer(Protocol):
    def submit(self, rows: list[dict]) -> PendingBatch: ...
    def close(self) -> None: ...


class InlinePreparer:
    """Prepares in the calling thread, when asked for the result (tests, the CLI, `prepare_processes: 0`)."""

    def __init__(self, settings: Settings, signer: Signer) -> None:
        self.settings = settings
        self.signer = signer

    def submit(self, rows: list[dict]) -> PendingBatch:
        return _Later(lambda: [(row["id"], prepare_or_reason(self.settings, self.signer, row)) for row in rows])

    def close(self) -> None:
        pass


class _Later:
    def __init__(self, compute) -> None:
        self._compute = compute

    def result(self) -> list[tuple[int, Preparation]]:
        return self._compute()
