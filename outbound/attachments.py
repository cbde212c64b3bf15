"""Files in outgoing mail: chosen and placed when a mail is queued, their bytes filled in when it is sent.

An agent works a ticket from their mailbox alone, so the customer's
screenshot has to reach them, and the file an agent attaches to a reply
has to reach the customer. The outbox row keeps the composed mail with
each file's MIME part empty, marked with the file's sha256
(`X-Ticketd-Attachment`); delivery reads the file from data_dir and
writes it in as base64. So the database does not hold a copy of every
file per recipient, and a retry still sends the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.mime.base import MIMEBase
from pathlib import Path

from ticketd.store.files import attachment_path

log = logging.getLogger("ticketd.outbound")

MARKER = "X-Ticketd-Attachment"
_MARKER_LINE = b"\r\n" + MARKER.encode() + b":"
# RFC 2045 section 5.1: type "/" subtype, each a token; anything else a
# sender wrote (parameters, spaces, CR/LF) never reaches our header.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_SHA256 = re.compile(rb"[0-9a-f]{64}")
_MARKED = re.compile(rb"\r\n" + MARKER.encode() + rb":\s*([0-9a-f]{64})")
_BASE64_LINE = 57   # bytes per 76-character line (RFC 2045 section 6.8)


@dataclass(frozen=True)
class Listed:
    """One file a mail mentions: attached, or named only because it did not fit."""
    filename: str
    size: int
    content_type: str
    sha256: str
    attached: bool

    def as_context(self) -> dict:
        return {"filename": self.filename, "size": self.size, "content_type": self.content_type,
                "attached": self.attached}


def choose(rows: Iterable[Mapping], message_order: tuple[int, ...], limit: int) -> list[Listed]:
    """The files of the given messages, newest message first, attached while they fit in `limit` bytes.

    A file that does not fit is listed, not attached, and a smaller one
    after it may still fit. The same file twice (a logo in every
    signature) goes once; the same content under another name goes under
    each: "contract-v1.pdf" and "contract-signed.pdf" are what the
    customer will speak of, and each part's bytes are read at sending time.
    """
    rank = {message_id: i for i, message_id in enumerate(message_order)}
    ordered = sorted(rows, key=lambda r: (rank.get(r["message_id"], len(rank)), r["id"]))
    listed: list[Listed] = []
    seen: set[tuple[str, str]] = set()
    budget = limit
    for row in ordered:
        if (row["filename"], row["sha256"]) in seen:
            continue
        seen.add((row["filename"], row["sha256"]))
        fits = row["size"] <= budget
        if fits:
            budget -= row["size"]
        listed.append(Listed(filename=row["filename"], size=row["size"], content_type=row["content_type"],
                             sha256=row["sha256"], attached=fits))
    return listed


def mixed_boundary(message_id: str) -> str:
    # "=_" never occurs in quoted-printable text (RFC 2045 section 6.7), and
    # every text part we send is quoted-printable: a line starting with
    # "--" and this boundary is ours, so delivery can find the parts by it.
    return "=_m" + hashlib.blake2b(message_id.encode(), digest_size=12).hexdigest()


def placeholder_part(listed: Listed) -> MIMEBase:
    """The file's MIME part without its bytes; `fill_files` puts them in."""
    media_type = listed.content_type.strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type):
        media_type = "application/octet-stream"
    if media_type.startswith(("message/", "multipart/")):
        # A forwarded mail may only be 7bit, 8bit or binary (RFC 2046 section 5.2.1; RFC 2045 section 6.4),
        # and its file goes base64 like every file: under its own type a reader takes the base64 text for
        # the mail. As a file (its name ends .eml) mail clients open it as the mail it is.
        media_type = "application/octet-stream"
    main, sub = media_type.split("/", 1)
    part = MIMEBase(main, sub)
    del part["MIME-Version"]
    # The stored name is sanitised and display-only; RFC 2231 for anything
    # beyond ASCII (RFC 2183 filename parameter).
    name = listed.filename if listed.filename.isascii() else ("utf-8", "", listed.filename)
    part.add_header("Content-Disposition", "attachment", filename=name)
    part["Content-Transfer-Encoding"] = "base64"
    part[MARKER] = listed.sha256
    part.set_payload("")
    return part


def marked_files(raw: bytes) -> set[str]:
    """The sha256 of every file a queued mail will carry (its marked parts; a folded marker too)."""
    return {m.group(1).decode() for m in _MARKED.finditer(raw)}


def _base64_lines(data: bytes) -> bytes:
    return b"\r\n".join(base64.b64encode(data[i:i + _BASE64_LINE]) for i in range(0, len(data), _BASE64_LINE))


class FileNotHere(Exception):
    """A file the database still names is missing under this host's data_dir: try again, do not send without it."""


def _stored_file(files_dir: Path, sha256: str, still_named: Callable[[str], bool]) -> bytes | None:
    """The file's bytes, or None when it was erased or is no longer what was stored.

    A missing file that an attachment row still names was not erased: this
    process looks at another data_dir than the one processing wrote to (a
    `ticketd worker` on a host without the shared data_dir), and sending
    the mail without it would lose it for good. FileNotHere says so.
    """
    try:
        data = attachment_path(files_dir, sha256).read_bytes()
    except FileNotFoundError:
        if still_named(sha256):
            raise FileNotHere(f"attachment file {sha256[:12]}… is not under {files_dir}, though a ticket holds "
                              "it; every ticketd process that sends mail needs the daemon's data_dir") from None
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.error("attachment file %s does not match its sha256; not sent", sha256)
        return None
    return data


_GONE = (b"\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
         b"(An attachment was erased before this mail was sent.)")


def fill_files(raw: bytes, message_id: str, files_dir: Path, still_named: Callable[[str], bool]) -> bytes:
    """The mail as it goes out: every marked part holds its file, base64-encoded.

    A mail without marked parts comes back unchanged. A file erased or
    damaged since the mail was queued leaves a line saying so in its place;
    one missing that `still_named` (by sha256) raises FileNotHere. Only
    parts under this mail's own boundary are looked at, so text a customer
    wrote can never pull a file in.
    """
    if _MARKER_LINE not in raw:
        return raw
    delimiter = b"\r\n--" + mixed_boundary(message_id).encode()
    pieces = raw.split(delimiter)
    for i in range(1, len(pieces)):
        piece = pieces[i]
        head_end = piece.find(b"\r\n\r\n")
        at = piece.find(_MARKER_LINE)
        if at == -1 or head_end == -1 or at >= head_end:
            continue
        # The marker is the part's last header, perhaps folded over lines.
        sha = _SHA256.search(piece, at + len(_MARKER_LINE), head_end + 2)
        data = _stored_file(files_dir, sha.group().decode(), still_named) if sha else None
        pieces[i] = _GONE if data is None else _with_charset(piece[:at], data) + b"\r\n\r\n" + _base64_lines(data)
    return delimiter.join(pieces)


_TEXT_TYPE = re.compile(rb"(\r\nContent-Type: text/[a-z0-9!#$&^_.+-]+)(?=\r\n)", re.IGNORECASE)


def _with_charset(head: bytes, data: bytes) -> bytes:
    """A text file's part head naming UTF-8 when its bytes are UTF-8 beyond ASCII.

    Files are kept as bytes, without the charset they came with; a text
    part without one is US-ASCII (RFC 2046 section 4.1.2), so a reader
    shown the file inline garbled every non-ASCII letter of a UTF-8 log.
    """
    if data.isascii() or not _TEXT_TYPE.search(head):
        return head
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return head   # another charset, which was not kept: the reader's guess is as good as ours
    return _TEXT_TYPE.sub(rb'\1; charset="utf-8"', head, count=1)
