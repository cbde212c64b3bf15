"""Raw RFC 5322 bytes to a ParsedMail: tolerant of the mail people really send.

Uses the stdlib parser with (a raw-header variant of) the `compat32` policy,
which is several times faster than `policy.default` (bench/README.md), and
decodes headers itself (ingest.headers, ingest.charsets) so that broken
encoded words, unknown charsets and raw 8-bit headers give readable text
instead of exceptions. Files packed into a winmail.dat (ingest.tnef) and
those of a forwarded mail are listed beside their container; an opaquely
signed S/MIME mail is read as the mail it signs, unverified (ingest.smime),
and an encrypted one has a text that says it cannot be read. Pure: no I/O,
no clock; the one side effect is a WARNING logged for a winmail.dat that
cannot be read.
"""

from __future__ import annotations

import binascii
import email
import email.errors
import email.feedparser
import email.message
import email.parser
import email.utils
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from email.policy import Compat32, compat32

from ingest import smime
from ingest.boundaries import recover_parts
from ingest.charsets import ascii_reads_as_itself, decode_bytes, guess_charset, is_utf8
from ingest.email_params import MAX_FIELD_CHARS
from ingest.headers import (
    MEDIA_TYPE,
    address_pairs,
    clean_name,
    decode_8bit,
    decode_header_value,
    has_8bit,
    msgids,
    parse_addresses,
)
from ingest.html_text import html_to_text
from ingest.tnef import TnefContents, TnefError, tnef_contents

log = logging.getLogger(__name__)

# Fields the receiving servers add on the way in, so two deliveries of one
# mail (an SMTP retry, an IMAP copy of what also came by SMTP) carry different
# ones: trace fields (RFC 5321 section 4.4), Delivered-To and Envelope-To
# (qmail, Postfix, Exim), Received-SPF (RFC 7208 section 9.1),
# Authentication-Results (RFC 8601) and the ARC set (RFC 8617 section 4.1).
# DKIM-Signature is the sender's, the same on every route, and stays in the
# key; so do the Resent- fields (RFC 5322 section 3.6.6): a resent mail is new.
_TRACE_HEADERS = ("received", "return-path", "delivered-to", "x-original-to", "envelope-to", "received-spf",
                  "authentication-results", "arc-seal", "arc-message-signature", "arc-authentication-results")
# Leaves the stdlib parses into sub-messages that we keep whole as attachments
# (RFC 3464 delivery reports are a list of header blocks to it).
_WHOLE_PARTS = ("message/rfc822", "message/delivery-status", "message/global",
                "message/disposition-notification", "message/global-delivery-status")
_EXTENSIONS = {
    "message/rfc822": ".eml", "message/global": ".eml", "message/delivery-status": ".txt",
    "message/global-delivery-status": ".txt", "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
    "text/csv": ".csv", "text/xml": ".xml", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg",
    "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp", "image/tiff": ".tif",
    "image/svg+xml": ".svg", "image/webp": ".webp", "application/pdf": ".pdf", "application/zip": ".zip",
    "application/msword": ".doc", "application/vnd.ms-excel": ".xls", "application/pgp-signature": ".asc",
    "application/pgp-encrypted": ".asc", "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s", "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-mime": ".p7m", "application/ms-tnef": ".dat", "application/json": ".json",
    "video/quicktime": ".mov", "video/mp4": ".mp4", "audio/mpeg": ".mp3", "audio/wav": ".wav",
}


class MailTooComplex(ValueError):
    """The mail nests deeper or has more parts than we agree to walk."""


@dataclass(frozen=True)
class Attachment:
    filename: str          # sanitised, display only; storage is by sha256
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    from_addr: str | None              # lower case, or None when absent or ambiguous
    from_name: str | None
    from_count: int                    # several From addresses carry no authority
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    date: str | None
    headers: dict[str, str]            # lower-case name -> first value, decoded
    text: str                          # the body as text (plain part, or HTML made readable)
    html: str | None                   # the HTML part as sent, if any
    content_type: str                  # of the top-level entity (e.g. multipart/report)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    reply_to_name: str | None = None   # of the first Reply-To address
    # Who wrote it, for the customer side: From's address; of several (RFC 5322 3.6.2: several authors,
    # Sender the one who sent), Sender's when it is one of them, else the first. Never agent authority.
    author: str | None = None
    co_authors: list[str] = field(default_factory=list)   # the other From addresses
    # Display names of the To and Cc addresses (decoded and cleaned as From's), by address; unnamed ones absent.
    recipient_names: dict[str, str] = field(default_factory=dict)
    # Every ARC-Seal and ARC-Authentication-Results, (lower-case name, value), as they come (RFC 8617):
    # what intermediaries that changed the mail saw of its writer's proof (ticketd.domain.authority).
    arc_headers: list[tuple[str, str]] = field(default_factory=list)
    # The text's start was made from HTML: the mail had no text/plain part there, or a blank one.
    text_from_html: bool = False
    # Lower-case name -> every value of it, decoded, in order: a route's header.<Name> matches any of them.
    header_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


class _RawHeaders(Compat32):
    """compat32, but header values come back as written.

    compat32 turns a header holding raw 8-bit bytes into an `unknown-8bit`
    Header whose str() is replacement characters; we want the bytes, to guess
    their charset ourselves (RFC 6532 allows UTF-8 there; old mailers send
    their local charset).
    """

    def header_fetch_parse(self, name, value):
        # Trailing blanks too: the stdlib compares "base64 " to "base64" and
        # would leave such a part undecoded.
        return value.strip(" \t") if isinstance(value, str) else value

    # An attached mail is stored as re-serialised by the generator. Keeping
    # each header value exactly as read (compat32 drops the whitespace after
    # the colon) and writing it back unfolded-as-was keeps its bytes.
    def header_source_parse(self, sourcelines):
        name, value = sourcelines[0].split(":", 1)
        return name, (value + "".join(sourcelines[1:])).rstrip("\r\n")

    def fold(self, name, value):
        return f"{name}:{value}{self.linesep}"

    def fold_binary(self, name, value):
        return self.fold(name, value).encode("utf-8", "surrogateescape")


_POLICY = _RawHeaders()
_RAW_HEAD_PARSER = email.parser.BytesParser(policy=_POLICY)


# ---------------------------------------------------------------- filenames


def _extension(content_type: str) -> str:
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]
    main, _, sub = content_type.partition("/")
    if main in ("image", "audio", "video") and re.fullmatch(r"[a-z0-9]{2,5}", sub):
        return "." + sub
    return ".txt" if main == "text" else ".bin"


def generic_name(content_type: str, index: int = 0) -> str:
    """A name for a nameless part: image.jpg, document.html, video1.mov, file.bin."""
    main = content_type.split("/", 1)[0]
    stem = {"text/html": "document", "text/plain": "text"}.get(
        content_type, main if main in ("image", "video", "audio", "text") else "file")
    return f"{stem}{index or ''}{_extension(content_type)}"


def safe_filename(name: str | None, content_type: str, index: int = 0) -> str:
    """A display name that cannot escape a directory or carry control chars."""
    return _sanitise(name) or generic_name(content_type, index)


# Names Windows keeps for devices, with any extension ("NUL.txt", "con.tar.gz" are the device too): a file
# sent or shown under one cannot be saved there ("Naming Files, Paths, and Namespaces", Microsoft).
_WINDOWS_DEVICE = re.compile(r"(?:con|prn|aux|nul|conin\$|conout\$|(?:com|lpt)[0-9\u00b9\u00b2\u00b3])\s*",
                             re.IGNORECASE)


def _sanitise(name: str | None) -> str:
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # isprintable() also drops format characters such as U+202E (RIGHT-TO-LEFT
    # OVERRIDE), which disguise "txt.exe" as "exe.txt".
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    name = name.strip(" .")
    if _WINDOWS_DEVICE.fullmatch(name.split(".", 1)[0]):
        name = "_" + name
    if len(name.encode()) > 255:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        while len((stem + dot + ext).encode()) > 255:
            stem = stem[:-1]
        name = stem + dot + ext
    return name


def _param(part: email.message.Message, name: str, header: str) -> str | None:
    """A parameter's value, the RFC 2231 `name*=charset''…` form first when both are given.

    RFC 6266 section 4.3: a sender writes `filename="Uber.pdf"` for old
    readers beside `filename*=UTF-8''%C3%9Cber.pdf`, and the second is the
    name. The stdlib's get_filename() returns the first it lists, which is
    always the plain one (email.utils.decode_params puts RFC 2231 values last).
    """
    values = [v for k, v in part.get_params([], header=header) if k.strip().lower() == name]
    if not values:
        return None
    extended = [v for v in values if isinstance(v, tuple)]  # only `name*=` values decode to tuples
    return email.utils.collapse_rfc2231_value((extended or values)[0]).strip()


def _part_filename(part: email.message.Message, hints: tuple[str, ...]) -> str | None:
    """The sender's file name: RFC 2183 filename, else the Content-Type name."""
    try:
        raw = _param(part, "filename", "content-disposition") or _param(part, "name", "content-type")
    except Exception:  # a parameter too broken to read (bad RFC 2231 continuations)
        raw = None
    if not raw:
        return None
    charset = part.get_content_charset()
    return decode_header_value(raw, None, ((charset,) if charset else ()) + hints) or None


def _forwarded_subject(part: email.message.Message) -> str | None:
    """The raw Subject of an attached mail, read from its decoded bytes if it was sent encoded."""
    inner = _children(part)[0] if _children(part) else None
    if inner is None:
        return None
    if _cte(part) not in _ENCODINGS:
        return inner.get("subject")
    data = _part_bytes(part)
    blank = _BLANK_LINE.search(data)
    try:
        return _RAW_HEAD_PARSER.parsebytes(data[:blank.start()] if blank else data, headersonly=True).get("subject")
    except Exception:  # a head too broken to read: the part gets a generic name
        return None


def _fallback_name(part: email.message.Message, ctype: str, hints: tuple[str, ...]) -> str | None:
    """A meaningful name for a part the sender left nameless."""
    if ctype in _WHOLE_PARTS or ctype == "text/rfc822-headers":
        # Delivery reports label their parts ("Delivery report", "Undelivered Message").
        if ctype in ("message/rfc822", "message/global"):
            subject = decode_header_value(_forwarded_subject(part), None, hints)
            if subject:
                # "Invoice 03/2024 overdue" is a subject, not a path to cut at the "/".
                return subject.replace("/", "-").replace("\\", "-")[:120] + ".eml"
        description = decode_header_value(part.get("content-description"), None, hints)
        if description and len(description) <= 120:
            return description.replace("/", "-") + _extension(ctype)
        return ctype.split("/")[1] + _extension(ctype)  # "delivery-status.txt", "rfc822.eml"
    content_id = str(part.get("content-id") or "").strip().strip("<>")
    local = content_id.split("@", 1)[0]
    if re.fullmatch(r"[\w.-]{1,100}\.[A-Za-z0-9]{2,5}", local):
        return local  # Outlook: Content-ID: <image001.jpg@01CDB132.D8A510F0>
    return None


# ---------------------------------------------------------------- body walk


def _payload(part: email.message.Message) -> str | list:
    # Message.get_payload() decodes 8-bit text with the part's charset
    # parameter and raises when that parameter itself holds 8-bit bytes;
    # the stored payload is what we want anyway.
    return part._payload  # noqa: SLF001


def _children(part: email.message.Message) -> list[email.message.Message]:
    payload = _payload(part)
    return [c for c in payload if isinstance(c, email.message.Message)] if isinstance(payload, list) else []


def _refuse_overlong_parameter_fields(part: email.message.Message) -> None:
    """A Content-Type or Content-Disposition longer than any mailer writes is refused (ingest.email_params)."""
    for name in ("Content-Type", "Content-Disposition"):
        for value in part.get_all(name, ()):
            if len(text := str(value)) > MAX_FIELD_CHARS:
                raise MailTooComplex(f"a {name} field of {len(text)} characters, more than {MAX_FIELD_CHARS}")


class _Limits:
    """The MIME limits for one mail, and how much of them its parts have used.

    The parts of a forwarded mail and the files inside a winmail.dat count
    as parts too: unpacking them must not let a mail past what its MIME
    structure alone could not get past.
    """

    def __init__(self, max_depth: int, max_parts: int) -> None:
        self.max_depth = max_depth
        self.max_parts = max_parts
        self.seen = 0
        self.depths: dict[int, int] = {}  # id(part) -> its nesting depth

    def walk(self, msg: email.message.Message, depth: int = 0) -> None:
        """Refuse hostile structure before walking it (attached mails count too)."""
        stack = [(msg, depth)]
        while stack:
            part, depth = stack.pop()
            self.count(1)
            if depth > self.max_depth:
                raise MailTooComplex(f"MIME nesting deeper than {self.max_depth}")
            self.depths[id(part)] = depth
            _refuse_overlong_parameter_fields(part)
            stack.extend((child, depth + 1) for child in _children(part))

    def count(self, parts: int) -> None:
        """Count parts found beyond the MIME structure (files inside a winmail.dat)."""
        self.seen += parts
        if self.seen > self.max_parts:
            raise MailTooComplex(f"more than {self.max_parts} MIME parts")

    def depth_left(self, part: email.message.Message) -> int:
        """How many levels may still nest below a part (for messages attached inside a winmail.dat)."""
        return self.max_depth - self.depths.get(id(part), 0)


def _disposition(part: email.message.Message) -> str:
    return str(part.get("content-disposition") or "").split(";")[0].strip().lower()


@dataclass
class _Body:
    """Body parts in order, grouped so each alternative contributes once."""
    segments: list[tuple[int, str, email.message.Message]] = field(default_factory=list)
    attachments: list[email.message.Message] = field(default_factory=list)

    def extend(self, other: _Body) -> None:
        self.segments += other.segments
        self.attachments += other.attachments


class _Walker:
    def __init__(self) -> None:
        self.groups = 0

    def group(self) -> int:
        self.groups += 1
        return self.groups

    def body(self, part: email.message.Message, top: bool = False) -> _Body:
        ctype = part.get_content_type()
        out = _Body()
        if not part.is_multipart() or ctype in _WHOLE_PARTS:
            kind = self.body_kind(part, ctype, top)
            if kind:
                out.segments.append((self.group(), kind, part))
            else:
                out.attachments.append(part)
            return out
        children = _children(part)
        if ctype == "multipart/alternative":
            return self.alternative(children)
        if ctype == "multipart/related" and children:
            # RFC 2387: the root is named by the start parameter, else it is the first part.
            start = str(part.get_param("start") or "").strip().strip("<>")
            root = next((c for c in children if start and str(c.get("content-id") or "").strip().strip("<>") == start),
                        children[0])
            out.extend(self.body(root))
            for child in children:
                if child is not root:
                    out.attachments += self.leaves(child)
            return out
        for child in children:  # mixed, report, signed, encrypted, digest, unknown
            out.extend(self.body(child))
        return out

    @staticmethod
    def body_kind(part: email.message.Message, ctype: str, top: bool) -> str | None:
        if ctype.startswith("multipart/"):
            return "plain"  # no boundary, or one never found: the parts are text as sent
        if ctype not in ("text/plain", "text/html") or _disposition(part) == "attachment":
            return None
        if not top and part.get_filename(None):  # name="" is no name (RT's crashes-file-based-parser)
            return None
        return "plain" if ctype == "text/plain" else "html"

    def alternative(self, children: list[email.message.Message]) -> _Body:
        # RFC 2046 section 5.1.4: alternatives in increasing order of preference.
        # We want the plain text (for replies and rules) and the richest HTML.
        results = [self.body(child) for child in children]
        has = [{kind for _, kind, _ in r.segments} for r in results]
        plain = next((i for i, kinds in enumerate(has) if "plain" in kinds), None)
        html = next((i for i in reversed(range(len(has))) if "html" in has[i]), None)
        chosen = sorted({i for i in (plain, html) if i is not None})
        out = _Body()
        group = self.group()
        for i in chosen:
            out.segments += [(group, kind, p) for _, kind, p in results[i].segments]
            out.attachments += results[i].attachments
        if not chosen and results:
            out.extend(results[-1])
            chosen = [len(results) - 1]
        # A calendar invite or similar sent as an alternative is still worth keeping.
        for i, (child, result) in enumerate(zip(children, results)):
            if i not in chosen and not child.is_multipart():
                out.attachments += result.attachments
        return out

    def leaves(self, part: email.message.Message) -> list[email.message.Message]:
        if part.is_multipart() and part.get_content_type() not in _WHOLE_PARTS:
            return [leaf for child in _children(part) for leaf in self.leaves(child)]
        return [part]


_UUENCODE = ("x-uuencode", "uuencode", "uue", "x-uue")
_ENCODINGS = ("base64", "quoted-printable", *_UUENCODE)  # the transfer encodings we undo


def _cte(part: email.message.Message) -> str:
    return str(part.get("content-transfer-encoding") or "").strip().lower()


def _whole_part_bytes(part: email.message.Message, linesep: str) -> bytes:
    """The body of a part the stdlib parsed into sub-messages, as it was written."""
    payload = _payload(part)
    ctype = part.get_content_type()
    if ctype.startswith("message/") and ctype.endswith(("rfc822", "global")) and payload:
        inner = payload[0]
        try:
            data = inner.as_bytes(policy=_POLICY.clone(linesep=linesep))
        except Exception:
            data = str(inner).encode("utf-8", "surrogateescape")
        if _cte(part) in _ENCODINGS and any(
                isinstance(d, email.errors.MissingHeaderBodySeparatorDefect) for d in inner.defects):
            # Encoded text is no mail: a quoted-printable soft line break inside
            # a header ends the headers for the stdlib, and the generator then
            # writes a blank line that was never sent. Take it out again.
            nl = linesep.encode()
            data = data[len(nl):] if data.startswith(nl) else data.replace(nl + nl, nl, 1)
        return data if data.strip() else b""
    try:
        whole = part.as_bytes()
    except Exception:
        whole = str(part).encode("utf-8", "surrogateescape")
    whole = whole.replace(b"\r\n", b"\n")
    return whole.split(b"\n\n", 1)[1] if b"\n\n" in whole else whole


def _undo_transfer_encoding(data: bytes, cte: str) -> bytes:
    """Bytes of an attached mail or report sent base64 or quoted-printable.

    RFC 2046 section 5.2.1 allows only 7bit, 8bit and binary for
    message/rfc822, but mailers (webmail forwarding an .eml, some gateways)
    encode it anyway; the stdlib then parses the encoded text as if it were the
    mail. Undone here so the attachment is the mail that was forwarded.
    """
    if cte == "base64":
        return b64decode(data)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    if cte in _UUENCODE:
        return uudecode(data)
    return data


def _part_bytes(part: email.message.Message, linesep: str = "\n") -> bytes:
    ctype = part.get_content_type()
    payload = _payload(part)
    cte = _cte(part)
    if ctype in _WHOLE_PARTS and isinstance(payload, list):
        return _undo_transfer_encoding(_whole_part_bytes(part, linesep), cte)
    if cte in _UUENCODE and isinstance(payload, str):
        return uudecode(payload.encode("utf-8", "surrogateescape"))
    if cte == "base64" and isinstance(payload, str):
        return b64decode(payload)
    # Quoted-printable as the stdlib reads the field (lower case, no more), which undid it so far.
    if isinstance(payload, str) and str(part.get("content-transfer-encoding", "")).lower() == "quoted-printable":
        try:
            return qp_decode(payload)
        except UnicodeEncodeError:  # characters no bytes were read as: the stdlib's way below
            pass
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a transfer encoding too broken to undo: keep it as sent
        data = None
    if data is None:
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


# Deleted by bytes.translate in one pass: a regular expression's substitution made an object per line.
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")))
_PADDING = re.compile(rb"=+")
# Base64 and quoted-printable are undone this many characters at a time: a large part's
# text, its bytes and what they decode to are not each held whole at once.
_BASE64_PIECE = 1 << 20
_QP_PIECE = 1 << 20


def b64decode(data: bytes | str) -> bytes:
    """Base64 as much as it decodes (RFC 2045 section 6.8 says ignore what does not fit).

    Decoded four characters at a time, and padding ends a group of four:
    some encoders write each chunk of a file as its own padded base64
    (`SGVsbG8=` then `IHdvcmxk`), so the alignment starts over after `=`, where
    dropping the `=` would shift every later byte. The stdlib gives up at the
    first padding or at a length off by one character; a truncated part should
    still give its bytes, so an incomplete last group is cut, never an error.
    A str is the stored payload (8-bit bytes as surrogates), read as its bytes.
    """
    out: list[bytes] = []
    group = b""   # characters of the current group of fours not decoded yet (the padding ends it)
    for start in range(0, len(data), _BASE64_PIECE):
        piece = data[start:start + _BASE64_PIECE]
        if isinstance(piece, str):
            piece = piece.encode("utf-8", "surrogateescape")
        for i, chunk in enumerate(_PADDING.split(piece.translate(None, _NOT_BASE64))):
            if i:  # a padding run came before this chunk
                out.append(_last_quantum(group))
                group = b""
            group += chunk
            whole = len(group) - len(group) % 4
            if whole:
                out.append(binascii.a2b_base64(group[:whole]))
                group = group[whole:]
    out.append(_last_quantum(group))
    return b"".join(out)


def _last_quantum(chars: bytes) -> bytes:
    """The bytes of fewer than four base64 characters that end a group; one lone character holds none."""
    if len(chars) % 4 == 1:
        chars = chars[:-1]
    return binascii.a2b_base64(chars + b"=" * (-len(chars) % 4)) if chars else b""


def qp_decode(payload: str) -> bytes:
    """Quoted-printable as the stdlib's get_payload(decode=True) undoes it, a run of whole lines at a time.

    The stdlib encodes the whole payload to bytes, checks it for 8-bit
    bytes with one more copy, and decodes into a buffer as large as the
    input: four times a large body. Quoted-printable is undone line by line
    (RFC 2045 section 6.7: a soft line break ends at its line's end), so
    pieces that end after a line feed decode to the same bytes.
    """
    out: list[bytes] = []
    start = 0
    while start < len(payload):
        end = payload.find("\n", start + _QP_PIECE)
        end = len(payload) if end < 0 else end + 1
        out.append(binascii.a2b_qp(payload[start:end].encode("ascii", "surrogateescape")))
        start = end
    return b"".join(out)


def uudecode(data: bytes) -> bytes:
    """uuencoded bytes, with or without the `begin`/`end` lines (Mac mailers omit them)."""
    out = bytearray()
    for line in data.splitlines():
        if line.strip() == b"end":
            break
        if not line.strip() or line.startswith(b"begin "):
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad short lines inconsistently; trust the length byte.
            size = 1 + (((line[0] - 32) & 63) * 4 + 2) // 3
            try:
                out += binascii.a2b_uu(line[:size].ljust(size))
            except binascii.Error:
                continue
    return bytes(out)


# A file uuencoded into the text itself (Lotus Notes and other old clients): a `begin` line, the
# encoded lines, an `end` line.
_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} (\S[^\n]*)\n", re.MULTILINE)
_UU_END = re.compile(r"^end[ \t]*$", re.MULTILINE)


def _inline_files(text: str) -> tuple[str, list[Attachment]]:
    """Text with its inline uuencoded files taken out, and the files.

    Each `begin` is paired with the first `end` after it, looked for once:
    when none follows, none follows a later `begin` either. One regular
    expression spanning both lines looked again from every `begin`, and a
    480 kB text of `begin` lines took over a minute (time growing with the
    square of its size).
    """
    if "begin " not in text:
        return text, []
    files: list[Attachment] = []
    kept: list[str] = []
    pos = 0
    while (begin := _UU_BEGIN.search(text, pos)) and (end := _UU_END.search(text, begin.end())):
        name = _sanitise(begin.group(1).strip())
        data = uudecode(text[begin.end():end.start()].encode("utf-8", "surrogateescape"))
        files.append(Attachment(filename=name or generic_name("application/octet-stream"),
                                content_type="application/octet-stream", data=data))
        kept += [text[pos:begin.start()], f"[{name}]"]
        pos = end.end()
    return "".join(kept) + text[pos:], files


def _part_text(part: email.message.Message, hints: tuple[str, ...]) -> str:
    ctype = part.get_content_type()
    charset = part.get_content_charset()
    text = _stored_text(part, charset)
    if text is None:
        # An HTML part may name its charset in a <meta> where MIME names none. The bytes are
        # not kept past their decoding: a large body is held as text alone from there.
        text = decode_bytes(_part_bytes(part), charset, hints, html=ctype == "text/html")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if ctype == "text/plain" and str(part.get_param("format") or "").lower() == "flowed":
        text = unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _stored_text(part: email.message.Message, charset: str | None) -> str | None:
    """The part's text when it is its stored payload: ASCII, sent without a transfer encoding, in a charset that
    reads ASCII as itself. What decoding its bytes gives, without two more copies of a large body."""
    payload = _payload(part)
    if not isinstance(payload, str) or not payload.isascii() or not ascii_reads_as_itself(charset):
        return None
    # Neither _part_bytes nor the stdlib's get_payload(decode=True) undoes anything: the bytes are the ASCII.
    if _cte(part) in _ENCODINGS or str(part.get("content-transfer-encoding", "")).lower() in _ENCODINGS:
        return None
    return payload


def unflow(text: str, delsp: bool = False) -> str:
    """RFC 3676 format=flowed: join soft line breaks (same quote depth only)."""
    out: list[str] = []
    current: str | None = None
    depth = -1
    for line in text.split("\n"):
        quote = len(line) - len(line.lstrip(">"))
        body = line[quote:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing, section 4.4
        if current is not None and quote == depth:
            current += body
        else:
            if current is not None:
                out.append(current)
            current, depth = (">" * quote + (" " if quote else "") + body), quote
        flowed = body.endswith(" ") and body != "-- "
        if flowed:
            if delsp:
                current = current[:-1]
            continue
        out.append(current)
        current, depth = None, -1
    if current is not None:
        out.append(current)
    return "\n".join(out)


def _charset_hints(msg: email.message.Message) -> tuple[str, ...]:
    """Every charset the mail declares, for text that declares none (raw 8-bit headers)."""
    found: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        charset = part.get_content_charset()
        if charset and charset not in found:
            found.append(charset)
        stack.extend(_children(part))
    return tuple(found)


def _repair_head(raw: bytes) -> bytes | None:
    """Header block of a mail whose headers the stdlib gave up on, repaired.

    A line in the header block that is neither `Name: value` nor folded ends
    the headers for the stdlib (MissingHeaderBodySeparatorDefect), and the
    rest of the headers become body text. Mail in the corpus has such lines:
    unindented base64 continuations from a spam filter, a "---- Original
    email message ----" banner on top. Such a line is taken as a fold when a
    header precedes it, and dropped when none does.
    """
    nl = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    head, sep, body = raw.partition(nl + nl)
    if not sep:
        return None
    lines = head.split(nl)
    header_re = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")
    if sum(1 for line in lines if header_re.match(line)) < 2:
        return None
    fixed: list[bytes] = []
    for line in lines:
        if header_re.match(line) or line[:1] in (b" ", b"\t"):
            fixed.append(line)
        elif fixed:
            fixed.append(b" " + line)
    return nl.join(fixed) + sep + body


# A Content-Type field that names a multipart or message type: no single entity, as far as a look tells.
_COMPOUND_TYPE = re.compile(rb"^content-type:\s*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)
# What email.parser.Parser reads at a time: the pieces message_from_bytes fed the parser, so it reads alike.
_FEED_CHUNK = 8192


def _one_entity(raw: bytes) -> email.message.Message | None:
    """The mail as the stdlib parses it, when it is one entity (no multipart, no message/*), else None.

    The stdlib keeps such a body as a list of its lines until its end, one
    object of some 80 bytes per line: a 25 MB text of short lines took three
    times its size that way. The body is everything after the blank line
    that ends the header (RFC 5322 section 2.1), which is what the stdlib
    would join, so it is taken whole. Any doubt where the header ends (a
    line in it that is no field, no field at all, a defect) leaves the mail
    to the stdlib whole.
    """
    blank = _BLANK_LINE.search(raw)
    if blank is None or _COMPOUND_TYPE.search(raw, 0, blank.start()):
        return None   # (the stdlib would read the header again: most mail is multipart)
    msg = _RAW_HEAD_PARSER.parsebytes(raw[:blank.end()], headersonly=True)
    if msg.defects or _payload(msg) or not msg.keys() or msg.get_content_maintype() in ("multipart", "message"):
        return None
    # Decoded as BytesParser decodes (8-bit bytes kept as surrogates), from a view: no copy of the body's bytes.
    msg.set_payload(str(memoryview(raw)[blank.end():], "ascii", "surrogateescape"))
    return msg


def _stdlib_parse(raw: bytes) -> email.message.Message:
    """email.message_from_bytes(raw), without the copies of the whole mail it makes on the way.

    BytesParser decodes the whole mail into one str and reads it through a
    StringIO, which holds 4 bytes a character: five times a 25 MB mail's
    size besides the parse. Fed the same pieces from the bytes, the parser gives
    the same message.
    """
    msg = _one_entity(raw)
    if msg is not None:
        return msg
    parser = email.feedparser.BytesFeedParser(policy=_POLICY)
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start:start + _FEED_CHUNK])
    return parser.close()


def _message_from_bytes(raw: bytes) -> email.message.Message:
    try:
        msg = _stdlib_parse(raw)
        if any(isinstance(d, email.errors.MissingHeaderBodySeparatorDefect) for d in msg.defects) or not msg.keys():
            repaired = _repair_head(raw)
            if repaired is not None:
                msg = _stdlib_parse(repaired)
        recover_parts(msg, _POLICY)  # a multipart whose boundary is missing or wrong (ingest.boundaries)
        return msg
    except RecursionError as exc:  # the stdlib parser recurses once per nesting level
        raise MailTooComplex("MIME nesting too deep to parse") from exc


def _body_text(walked: _Body, hints: tuple[str, ...]) -> tuple[str, str | None, bool]:
    """The body as text (each alternative once, plain preferred), the HTML as sent, and whether the text's
    start was made from HTML."""
    groups: dict[int, dict[str, list[str]]] = {}
    html_parts: list[str] = []
    for group, kind, part in walked.segments:
        text = _part_text(part, hints)
        groups.setdefault(group, {"plain": [], "html": []})[kind].append(text)
        if kind == "html":
            html_parts.append(text)
    texts = []
    from_html = None
    for chunks in groups.values():
        if "".join(chunks["plain"]).strip() or not chunks["html"]:
            texts.append("\n".join(chunks["plain"]))
        else:
            texts.append(html_to_text("\n".join(chunks["html"])))
        if from_html is None and texts[-1].strip():
            from_html = not "".join(chunks["plain"]).strip()
    # NUL cannot be stored in a PostgreSQL text column and means nothing in mail text.
    text = "\n".join(t.strip("\n") for t in texts if t.strip()).replace("\x00", "")
    return text, ("\n".join(html_parts).replace("\x00", "") if html_parts else None), bool(from_html)


def _attachment(part: email.message.Message, hints: tuple[str, ...], linesep: str, generic: dict[str, int],
                with_cid: bool = True) -> Attachment:
    """One MIME leaf as an attachment; `generic` numbers the nameless ones (image.png, image1.png, …)."""
    ctype = part.get_content_type()
    disposition = _disposition(part)
    filename = _part_filename(part, hints) or _fallback_name(part, ctype, hints)
    if ctype == "message/rfc822" and filename and "." not in filename[-6:]:
        filename += ".eml"
    name = _sanitise(filename)
    if not name:
        count = generic.get(ctype, 0)
        generic[ctype] = count + 1
        name = generic_name(ctype, count)
    content_id = str(part.get("content-id") or "").strip().strip("<>") or None
    return Attachment(
        filename=name,
        content_type=_media_type(ctype),
        data=_part_bytes(part, linesep),
        content_id=decode_8bit(content_id, hints) if content_id and with_cid else None,
        inline=disposition == "inline" or (bool(content_id) and disposition != "attachment"),
    )


def _media_type(ctype: str) -> str:
    """A part's type as stored with its file: control characters dropped ("image/pn\\x00g" is image/png);
    one that is still no type/subtype (8-bit bytes, a stray line the header repair folded in) says nothing
    of the file, and no mail could carry it out again as its Content-Type."""
    ctype = "".join(ch for ch in ctype if ch >= " " and ch != "\x7f")
    return ctype if MEDIA_TYPE.fullmatch(ctype) else "application/octet-stream"


_FORWARDS = ("message/rfc822", "message/global")
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
_TNEF_NAMES = ("winmail.dat", "win.dat")


def _is_winmail(attachment: Attachment) -> bool:
    """A winmail.dat by its type or, from gateways that relabel it application/octet-stream, its name."""
    return attachment.content_type in _TNEF_TYPES or attachment.filename.lower() in _TNEF_NAMES


@dataclass
class _Unpacker:
    """Lists a mail's attachments, each followed by the files a winmail.dat or a forwarded mail holds."""
    hints: tuple[str, ...]
    linesep: str
    limits: _Limits
    message_id: str | None
    defects: list[str] = field(default_factory=list)
    tnef_bodies: list[TnefContents] = field(default_factory=list)  # of the mail's own winmail.dat files

    def attachments(self, parts: list[email.message.Message], forwarded: bool = False) -> list[Attachment]:
        """The parts as attachments, in order, each followed by what it holds; `forwarded` inside a forwarded mail."""
        out: list[Attachment] = []
        generic: dict[str, int] = {}
        for part in parts:
            is_forward = part.get_content_type() in _FORWARDS
            if forwarded and is_forward:
                # A mail forwarded inside the forwarded one is already in its .eml: only its
                # files are listed, so nesting does not store the same bytes once per level.
                out += self.forwarded(part)
                continue
            # A cid: link in the mail's HTML never means a part of a mail it forwards.
            attachment = _attachment(part, self.hints, self.linesep, generic, with_cid=not forwarded)
            out.append(attachment)
            if is_forward:
                out += self.forwarded(part)
            elif _is_winmail(attachment):
                out += self.winmail(part, attachment, own=not forwarded)
        return out

    def forwarded(self, part: email.message.Message) -> list[Attachment]:
        """The files of a forwarded mail (RFC 2046 section 5.2.1); its .eml stays the evidence, listed before them."""
        inner = self.forwarded_mail(part)
        if inner is None:
            return []
        # Its own body parts are the text of the .eml, not files the agent would look for.
        return self.attachments(_Walker().body(inner, top=True).attachments, forwarded=True)

    def forwarded_mail(self, part: email.message.Message) -> email.message.Message | None:
        """The mail inside a message/rfc822 part, parsed from its decoded bytes when it was sent encoded."""
        if _cte(part) in _ENCODINGS and isinstance(_payload(part), list):
            # RFC 2046 section 5.2.1 forbids base64 and quoted-printable here, so the
            # stdlib parsed the encoded text; the real structure is walked and counted now.
            inner = _message_from_bytes(_part_bytes(part, self.linesep))
            self.limits.walk(inner, self.limits.depths.get(id(part), 0) + 1)
            return inner
        children = _children(part)  # already counted by Limits.walk
        return children[0] if children else None

    def winmail(self, part: email.message.Message, container: Attachment, own: bool) -> list[Attachment]:
        """The files packed into a winmail.dat ([MS-OXTNEF]), or none when it cannot be read whole.

        The winmail.dat itself stays listed whatever is found inside: ticketd
        does not turn an RTF body, meeting data or the other MAPI properties
        into anything, and tnefparse passes over some damage silently, so only
        the original is sure to hold everything the sender sent.
        """
        try:
            contents = tnef_contents(container.data, max_nesting=self.limits.depth_left(part))
        except TnefError as exc:
            self.warn(container.filename, f"kept unread: {exc}")
            return []
        for problem in contents.problems:
            self.warn(container.filename, problem)
        self.limits.count(len(contents.files))
        if own:
            self.tnef_bodies.append(contents)
        return [Attachment(filename=_sanitise(f.name) or generic_name(f.content_type, i),
                           content_type=f.content_type, data=f.data)
                for i, f in enumerate(contents.files)]

    def warn(self, name: str, problem: str) -> None:
        """Log what was left unread, with the mail's Message-ID, and note it among the defects."""
        log.warning("message %s: %s: %s", self.message_id, name, problem)
        self.defects.append("TnefError")


def _tnef_body(found: list[TnefContents], html: str | None) -> tuple[str, str | None, bool]:
    """Text (and the HTML, if the mail had none) from the first winmail.dat with a plain or HTML body, and
    whether the text was made from that HTML.

    An RTF-only body stays inside the winmail.dat: reading RTF needs an RTF
    parser, and a wrong reading would be worse than the empty text.
    """
    for contents in found:
        if contents.body:
            return contents.body.strip("\n"), html or contents.html, False
        if contents.html:
            return html_to_text(contents.html).strip("\n"), html or contents.html, True
    return "", html, False


def _opened(msg: email.message.Message) -> email.message.Message:
    """The mail an opaque S/MIME signature wraps (ingest.smime), else the mail as it came.

    Whatever cannot be opened (not CMS, detached, more layers than
    smime.MAX_LAYERS) is left whole, its smime.p7m an attachment as before.
    """
    opened = msg
    for _ in range(smime.MAX_LAYERS):
        if not smime.may_be_signed(opened):
            return opened
        content = smime.signed_content(_part_bytes(opened))
        if content is None:
            return msg
        opened = smime.joined(msg, _message_from_bytes(content))
    return msg if smime.may_be_signed(opened) else opened


def mbox_separator_end(raw: bytes) -> int:
    """Where the header block begins: after an mbox separator line (`From cust@example.org Mon ...`, a mail saved
    from a mailbox file and sent on whole) that opens the mail, else 0."""
    if raw.startswith(b"From ") and b"\n" in raw:
        first = raw[:raw.index(b"\n")]
        if b":" not in first.split(b" ", 1)[0]:
            return len(first) + 1
    return 0


def parse_mail(raw: bytes, *, max_depth: int = 20, max_parts: int = 500) -> ParsedMail:
    """Parse raw bytes; raises MailTooComplex past the limits, nothing else by design."""
    raw = raw[mbox_separator_end(raw):]
    msg = _opened(_message_from_bytes(raw))
    limits = _Limits(max_depth, max_parts)
    limits.walk(msg)
    hints = _charset_hints(msg)
    raw_8bit = b"\n".join(str(v).encode("utf-8", "surrogateescape") for _, v in msg.raw_items() if has_8bit(str(v)))
    if raw_8bit and not is_utf8(raw_8bit):
        # All raw 8-bit header text together says more about its charset than
        # one short Subject does; the guess then also serves undeclared bodies.
        hints += (guess_charset(raw_8bit, hints)[0],)

    headers: dict[str, str] = {}
    every: dict[str, list[str]] = {}
    arc_headers: list[tuple[str, str]] = []
    for name, value in msg.raw_items():
        key = decode_8bit(str(name), hints).strip().lower()
        every.setdefault(key, []).append(decode_header_value(value, None, hints))
        headers.setdefault(key, every[key][0])
        if key in ("arc-seal", "arc-authentication-results"):
            arc_headers.append((key, str(value)))

    def addresses(name: str) -> list[tuple[str, str]]:
        return parse_addresses([str(v) for v in msg.get_all(name, [])], hints)

    froms = addresses("from")
    tos, ccs = addresses("to"), addresses("cc")
    reply_tos = addresses("reply-to")
    from_name, from_addr = (froms[0] if len(froms) == 1 else ("", None))
    author = froms[0] if froms else None
    if len(froms) > 1:
        senders = {a for _, a in addresses("sender")}
        author = next((f for f in froms if f[1] in senders), author)
        from_name = author[0]
    elif not froms:
        # "MAILER-DAEMON (Mail Delivery System)": no address, but a name to show.
        named = address_pairs(headers.get("from", ""))
        from_name = clean_name(named[0][0], False) if named else ""

    first_line = raw.split(b"\n", 1)[0]
    linesep = "\r\n" if first_line.endswith(b"\r") else "\n"  # for attached mails, as they came
    message_id = (msgids(headers.get("message-id", "")) or [None])[0]
    walked = _Walker().body(msg, top=True)
    text, html, from_html = _body_text(walked, hints)
    unpacker = _Unpacker(hints, linesep, limits, message_id)
    attachments = unpacker.attachments(walked.attachments)
    if not text.strip():
        # Outlook may put the whole body into the winmail.dat and send no text part.
        text, html, from_html = _tnef_body(unpacker.tnef_bodies, html)
    text, inline_files = _inline_files(text)
    attachments += inline_files
    if not text.strip() and attachments and smime.is_encrypted(msg, attachments[0].data):
        text = smime.encrypted_note(attachments[0].filename)

    return ParsedMail(
        message_id=message_id,
        in_reply_to=msgids(headers.get("in-reply-to", "")),
        references=msgids(headers.get("references", "")),
        from_addr=from_addr,
        from_name=from_name or None,
        from_count=len(froms),
        to=[a for _, a in tos],
        cc=[a for _, a in ccs],
        reply_to=[a for _, a in reply_tos],
        subject=headers.get("subject", ""),
        date=headers.get("date"),
        headers=headers,
        text=text,
        html=html,
        content_type=msg.get_content_type(),
        attachments=attachments,
        defects=[type(d).__name__ for d in msg.defects] + unpacker.defects,
        reply_to_name=(reply_tos[0][0] or None) if reply_tos else None,
        author=author[1] if author else None,
        co_authors=[a for _, a in froms if author and a != author[1]],
        recipient_names=_names(tos + ccs),
        arc_headers=arc_headers,
        text_from_html=from_html,
        header_values={key: tuple(values) for key, values in every.items()},
    )


def _names(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Address -> display name, the first name given to each address (`"John Smith" <john@…>`)."""
    names: dict[str, str] = {}
    for name, address in pairs:
        if name and address not in names:
            names[address] = name
    return names


# Where the header ends: the first empty line, whatever the line ends.
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HASH_CHUNK = 1 << 20


_LONE_CR = re.compile(rb"\r(?!\n)")


def _crlf_to_lf(data: bytes) -> bytes:
    """data with each CRLF made LF."""
    if _LONE_CR.search(data):
        return data.replace(b"\r\n", b"\n")
    # Every CR ends a CRLF, so deleting them all is the same, and bytes.replace
    # deletes one byte several times faster than it replaces two.
    return data.replace(b"\r", b"")


def _normalised_body_hash(raw: bytes, start: int, chunk: int = _HASH_CHUNK) -> str:
    """sha256 of raw[start:] with CRLF made LF and trailing whitespace cut, without copying the body.

    The same digest as hashing `raw[start:].replace(b"\\r\\n", b"\\n").rstrip()`
    (tests/test_parse.py holds them equal), in 1 MiB pieces: a mail at the
    size limit would otherwise be copied twice more while its sender waits.
    """
    end = len(raw)
    while end > start and raw[end - 1] in b" \t\r\n\x0b\x0c":  # what bytes.rstrip() removes
        end -= 1
    digest = hashlib.sha256()
    view = memoryview(raw)
    if raw.find(b"\r", start, end) < 0:
        # Nothing to make LF (a mail that came with LF line ends): hash the bytes where they lie.
        digest.update(view[start:end])
        return digest.hexdigest()
    carry = b""
    for offset in range(start, end, chunk):
        piece = carry + view[offset:min(offset + chunk, end)].tobytes()
        # A CR at the end of a piece may start a CRLF that the next piece ends.
        carry = b"\r" if piece.endswith(b"\r") else b""
        digest.update(_crlf_to_lf(piece[:-1] if carry else piece))
    digest.update(carry)
    return digest.hexdigest()


_HEAD_PARSER = email.parser.BytesParser()  # compat32, as email.message_from_bytes
_COMPAT32 = compat32  # the policy _HEAD_PARSER reads with
# A head of nothing but fields, each a name (printable ASCII but the colon,
# RFC 5322 section 2.2, as the stdlib's headerRE) and a value, folded on
# lines that open with a blank. Value characters leave out CR, which ends a
# line to the stdlib's feedparser, and VT, FF, FS, GS, RS, which end one to
# str.splitlines() (older feedparsers split by it): a head holding any of
# them is read by the stdlib, so one matched here has the stdlib's lines.
_VALUE_CHARS = r"[^\n\r\x0b\x0c\x1c\x1d\x1e]*"
_PLAIN_FIELD = rf"[\x21-\x39\x3b-\x7e]+:{_VALUE_CHARS}(?:\n[ \t]{_VALUE_CHARS})*\n"
_PLAIN_HEAD = re.compile(rf"(?:{_PLAIN_FIELD})+")
# Name and value as compat32 stores them: blanks after the colon dropped, folds kept.
_FIELD = re.compile(rf"([\x21-\x39\x3b-\x7e]+):[ \t]*({_VALUE_CHARS}(?:\n[ \t]{_VALUE_CHARS})*)\n")


def _plain_head_fields(head: bytes) -> list[tuple[str, str]] | None:
    """The (name, raw value) fields of an LF head that is nothing but fields, as compat32 reads them, else None.

    The stdlib's header parsing is half of dedupe_key's time on an ordinary
    mail; such a head needs none of its cases (an mbox `From ` line, a
    first line folded, a line that is no field, odd line ends), and any
    head with one of them goes to the stdlib instead.
    """
    text = head.decode("ascii", "surrogateescape") + "\n"
    if not _PLAIN_HEAD.fullmatch(text):
        return None
    return _FIELD.findall(text)


def _head_fields(raw: bytes, head_end: int) -> tuple[list[tuple[str, str]], bool]:
    """The head's fields as compat32 stores them (name, raw value), and whether lines that are no field came first.

    Lines before the first blank one that are no header (a mail with no
    header block at all, a block of bytes) are the mail's text.
    """
    head = raw[:head_end].replace(b"\r\n", b"\n")
    fields = _plain_head_fields(head)
    if fields is not None:
        return fields, False
    # Headers only: a multipart Content-Type would otherwise send the parser
    # looking for its boundary, compiling a new regular expression per mail.
    msg = _HEAD_PARSER.parsebytes(head + b"\n\n", headersonly=True)
    # The stored payload, not get_payload(): that decodes 8-bit bytes by the Content-Type's charset
    # parameter, and one holding a NUL raised ValueError.
    stray = msg._payload  # noqa: SLF001
    return list(msg.raw_items()), isinstance(stray, str) and bool(stray.strip())


def _message_id_as_written(value: str) -> str | None:
    """The first id of a raw compat32 Message-ID value, its raw 8-bit bytes decoded as UTF-8."""
    return (msgids(value.encode("ascii", "surrogateescape").decode("utf-8", "replace"))[:1] or [None])[0]


def dedupe_key(raw: bytes) -> tuple[str, str | None]:
    """The key a second delivery of the same mail collides on, and its Message-ID.

    Trace fields (Received, Return-Path, Authentication-Results and the rest
    of _TRACE_HEADERS) differ between the SMTP route and the IMAP route, so
    they are left out; line endings are normalised because one route may
    store CRLF and the other LF. The Message-ID alone is not trusted: two
    different mails sharing one (broken clients, forgeries) must both be
    kept, so the body takes part too.

    It never raises: it runs before the receiver's 250 and before an IMAP
    message is marked stored, where a raise would answer 451 to that mail
    for ever, or hold its mailbox up. A header block the stdlib cannot
    read is keyed by the whole mail's bytes instead, and the mail is stored
    (to be quarantined with the reason if it cannot be processed either).
    """
    try:
        return _key_by_fields(raw)
    except Exception:  # noqa: BLE001 -- storing the mail comes first; its processing says what is wrong
        return f"raw:{_normalised_body_hash(raw, 0)[:64]}", None


def _key_by_fields(raw: bytes) -> tuple[str, str | None]:
    blank = _BLANK_LINE.search(raw)
    head_end, body_start = (blank.start(), blank.end()) if blank else (len(raw), len(raw))
    fields, stray = _head_fields(raw, head_end)
    # Without the stray lines every mail without a head would share one key.
    body_hash = _normalised_body_hash(raw, 0 if stray else body_start)
    written = next(((k, v) for k, v in fields if k.lower() == "message-id"), None)
    message_id = (msgids(str(_COMPAT32.header_fetch_parse(*written)) if written else "")[:1] or [None])[0]
    if message_id:
        # The key hashes the Message-ID as compat32 reads it (8-bit bytes as U+FFFD), as every key
        # stored so far was made; the Message-ID returned for the log and `quarantine list` is
        # its bytes read as UTF-8 (RFC 6532), as the parser reads it.
        key = f"mid:{hashlib.sha256(message_id.encode('utf-8', 'surrogateescape')).hexdigest()[:40]}:{body_hash[:24]}"
        # An ASCII value reads the same both ways.
        return key, message_id if written[1].isascii() else _message_id_as_written(written[1]) or message_id
    kept = [
        f"{name.lower()}:{_COMPAT32.header_fetch_parse(name, value)}"
        for name, value in fields
        if name.lower() not in _TRACE_HEADERS and not name.lower().startswith("x-")
    ]
    head_hash = hashlib.sha256("\n".join(kept).encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha:{head_hash[:40]}:{body_hash[:24]}", None
