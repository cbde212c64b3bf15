"""Header values to text: unfolding, raw 8-bit bytes, RFC 2047 encoded words, addresses, Message-IDs."""

from __future__ import annotations

import binascii
import email.header
import email.utils
import re

import idna

from ingest.charsets import decode_bytes, lookup_codec

# RFC 6838 section 4.2: a media type's name and its subtype's (lower case, as get_content_type gives them).
_RESTRICTED_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
MEDIA_SUBTYPE = re.compile(_RESTRICTED_NAME)
MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QUOTED_OR_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|(?:=\?[^?\s]+\?[bBqQ]\?[^?]*\?=\s*)+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Bidirectional embeddings, overrides and isolates (Unicode UAX #9): in a subject or a name they turn text
# round for display ("\u202etnemyap" shows as "payment"), as in a file name (ingest/parse.py _sanitise);
# right-to-left text needs none of them to read right.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

# The widths of the columns these values are stored in (schema.sql). SQLite
# ignores a VARCHAR's width; PostgreSQL refuses a longer value, and a mail
# refused there is quarantined for good, so no value parsed here exceeds them.
ADDRESS_MAX = 320    # participants.email, messages.from_addr, tickets.requester
NAME_MAX = 320       # participants.name, messages.from_name, tickets.requester_name
MSGID_MAX = 998      # messages.message_id, raw_mail.message_id


def _unfold(value: str) -> str:
    # RFC 5322 section 2.2.3: unfolding removes the CRLF before the folding
    # whitespace; any other CR/LF (stray, or decoded out of an encoded word,
    # as in Zammad's mail027) must not reach a header value either.
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", " ").replace("\n", " ")


_ESCAPED_8BIT = re.compile("[\udc80-\udcff]")


def has_8bit(value: str) -> bool:
    return not value.isascii() and _ESCAPED_8BIT.search(value) is not None


def decode_8bit(value: str, hints: tuple[str, ...]) -> str:
    # The parser reads header bytes as ASCII with surrogateescape; undo that.
    if has_8bit(value):
        return decode_bytes(value.encode("utf-8", "surrogateescape"), None, hints)
    return value


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of one encoded word's text (RFC 2047 section 4), None if hopeless."""
    if encoding in "bB":
        text = re.sub(r"[^A-Za-z0-9+/]", "", text)
        text += "=" * (-len(text) % 4)
        try:
            return binascii.a2b_base64(text)
        except (binascii.Error, ValueError):
            return None
    text = text.replace("_", " ")
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "=" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1:i + 3]):
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
            continue
        out.extend(ch.encode("utf-8", "surrogateescape"))
        i += 1
    return bytes(out)


def _decode_words(value: str, hints: tuple[str, ...]) -> str:
    """Decode RFC 2047 encoded words; whitespace between two of them is dropped (section 6.2).

    Adjacent words in one charset are joined before decoding, because senders
    split multi-byte characters across words (RFC 2047 forbids it; they do).
    """
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    last_end = 0
    after_word = False

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            out.append(decode_bytes(bytes(pending), pending_charset, hints))
        pending, pending_charset = bytearray(), None

    for match in _ENCODED_WORD.finditer(value):
        gap = value[last_end:match.start()]
        last_end = match.end()
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 section 5 language suffix
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(gap + match.group(0))
            after_word = False
            continue
        joined = after_word and not gap.strip()
        if not (joined and lookup_codec(charset) == lookup_codec(pending_charset)):
            flush()
        if not joined:
            out.append(gap)
        pending_charset = charset
        pending.extend(data)
        after_word = True
    flush()
    out.append(value[last_end:])
    return "".join(out)


def decode_header_value(value: object, charset_hint: str | None = None,
                        hints: tuple[str, ...] = ()) -> str:
    """A header's text with encoded words (RFC 2047) decoded, never raising."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    hints = ((charset_hint,) if charset_hint else ()) + tuple(hints)
    text = decode_8bit(_unfold(str(value)), hints)
    if "=?" in text:
        text = _decode_words(text, hints)
    return _BIDI_CONTROLS.sub("", _CONTROL.sub(" ", text)).strip()


# ---------------------------------------------------------------- addresses


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _protect_words(value: str, hints: tuple[str, ...]) -> str:
    """Encoded words decoded into quoted strings, so a comma in a name stays in it.

    RFC 2047 section 5(3) says the decoded text is a phrase, never address
    syntax; decoding first and parsing after splits "=?..?Müller, Bernd?=".
    Many mailers also put encoded words inside quotes, which RFC 2047 forbids
    and everyone decodes.
    """
    def repl(match: re.Match) -> str:
        token = match.group(0)
        if token.startswith('"'):
            inner = re.sub(r"\\(.)", r"\1", token[1:-1])
            return _quote(_CONTROL.sub(" ", _decode_words(inner, hints))) if "=?" in inner else token
        trailing = token[len(token.rstrip()):]
        return _quote(_CONTROL.sub(" ", _decode_words(token.rstrip(), hints))) + trailing

    return _QUOTED_OR_WORD.sub(repl, value)


# An address spelled inside a display name: "<bob@example.com>", "bob@example.com", "(bob@example.com)".
# A word is read from its start only: tried at every character, a long word without "@" took time growing
# with the square of its length.
_ADDRESS_IN_NAME = re.compile(r"<[^<>@]*@[^<>]*>|(?<!\S)\S*[^\s@<>]@[^\s@<>]\S*")


def _unwrapped(name: str) -> str:
    """A name without the quotes some clients wrap it in ("'Jack Smith'"); quotes that are part of it stay.

    Only a pair around the whole name goes: `"Doe, John" (boss)` and
    `Robert "Bob"` begin or end with a quote that belongs to a quoted part.
    """
    while len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"" and name[0] not in name[1:-1]:
        name = name[1:-1].strip()
    return name


def clean_name(name: str, quoted: bool = True) -> str:
    name = _BIDI_CONTROLS.sub("", _CONTROL.sub(" ", name))
    if not quoted:
        # A comment beside a phrase is not part of the name (RFC 5322 section
        # 3.2.2): "MAILER-DAEMON (Mail Delivery System) <postmaster@…>".
        name = re.sub(r"\s*\([^()]*\)", "", name).strip() or name.strip("() ")
    # The address is the one in the angle brackets; another spelled in the name
    # ("Bob <bob@example.com>" <spoof@…>) shows as the sender's where a name
    # is shown beside or without an address, and makes anyone an agent or a
    # colleague to the reader. It goes, and a name that was only that is none.
    name = _ADDRESS_IN_NAME.sub(" ", name)
    name = _unwrapped(re.sub(r"[ \t]+", " ", name).strip())
    if len(name) > NAME_MAX:
        # A display name is only shown, so a cut one is still the sender's;
        # the ellipsis says it was cut.
        name = name[:NAME_MAX - 1].rstrip() + "…"
    return name


def _valid_addr(addr: str) -> bool:
    """Whether addr can be someone's mailbox; one that cannot is dropped, never repaired.

    Repairing would make it someone else's: an address with a NUL taken out
    is another mailbox, and so is a long address cut to fit its column. No
    control character belongs in an address (RFC 5322 section 3.4.1 allows
    them only in obsolete quoted forms, NUL never), and none longer than 320
    octets can be delivered (RFC 5321 section 4.5.3.1: a 64-octet local part,
    "@", a 255-octet domain), which is also the width of every column that
    holds an address.
    """
    local, at, domain = addr.rpartition("@")
    return bool(at and local and domain and not re.search(r'[\s<>(),;"]', addr) and not _CONTROL.search(addr)
                and len(addr.encode("utf-8", "replace")) <= ADDRESS_MAX)


def mailbox(addr: str) -> str:
    """An address as ticketd keeps it: lower case, without a dot ending its domain.

    "claudia@yahoo.com." is the DNS spelling of the root label; RFC 5321
    section 4.1.2's Domain has no empty label, and smarthosts refuse the
    address as malformed, so the customer would never be answered.
    """
    addr = addr.lower()
    local, at, domain = addr.rpartition("@")
    if at and domain.endswith(".") and domain.rstrip("."):
        addr = f"{local}@{domain[:-1]}"
    return addr


def is_address(addr: str) -> bool:
    """Whether `addr` is a bare address (local@domain) as every address read from a header is: what an RCPT may name."""
    return _valid_addr(addr)


def ascii_domain(address: str) -> str:
    """`address` with an internationalised domain in its ASCII form (IDNA, RFC 5890): what SMTP carries.

    `kunde@bücher.example` is `kunde@xn--bcher-kva.example` on the wire; a
    non-ASCII local part stays as it is and needs SMTPUTF8 (RFC 6531).
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{a_label_domain(domain)}"
    except UnicodeError:
        return address   # not a domain name IDNA can write: left as it came (a smarthost's refusal says so)


def a_label_domain(domain: str) -> str:
    """A domain name in A-labels; UnicodeError when IDNA cannot write it.

    IDNA 2008 with the UTS #46 mapping (RFC 5891), as registries and mail
    servers read names today: `faß.de` is `xn--fa-hia.de`. Python's own
    codec is IDNA 2003, which maps ß to ss and mailed `fass.de`, another
    domain. Names IDNA 2008 refuses (symbols such as ☃) fall back to IDNA
    2003, which still writes them.
    """
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain.encode("idna").decode("ascii")


def address_pairs(value: str) -> list[tuple[str, str]]:
    """`email.utils.getaddresses` of one header value, which never raises.

    The stdlib reads a comment inside a comment by recursing: a few hundred
    nested "(" (no mailer writes more than one or two) end in RecursionError,
    and the mail was quarantined for a traceback. Such a value is read again
    without its comments, which name no address (RFC 5322 section 3.2.2).
    """
    try:
        return email.utils.getaddresses([value])
    except RecursionError:
        return email.utils.getaddresses([without_comments(value)])


def without_comments(value: str) -> str:
    """`value` without its comments, nested or not, in one pass; quoted strings and escapes are kept."""
    kept: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == "(":
            depth += 1
            continue
        elif char == ")" and depth:
            depth -= 1
            continue
        elif char == '"' and not depth:
            quoted = True
        if not depth:
            kept.append(char)
    return "".join(kept)


def _inside_words(text: str) -> list[tuple[str, str]]:
    """The addresses in the decoded text of encoded words that held a whole "Name <addr>", as names and addresses.

    RFC 2047 section 5 forbids an encoded word to carry an address, so
    _protect_words reads one as a name; but webmail and PHP mailers encode
    `"Name" <addr>` whole, and mail clients (and Zammad) read the address out
    of it. Only text that cannot be an address (it has blanks or brackets)
    is read again, so a name encoded beside a real address stays a name.
    """
    if not re.search(r"[\s<>]", text):
        return []
    found = address_pairs(text)
    return [(clean_name(name, '"' in text), mailbox(addr)) for name, addr in found if _valid_addr(addr)]


def parse_addresses(values: list[str], hints: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(display name, address as `mailbox` keeps it) pairs from raw header values."""
    pairs = []
    for value in values:
        value = decode_8bit(_unfold(str(value)), hints)
        encoded = "=?" in value
        if encoded:
            value = _protect_words(value, hints)
        found = address_pairs(value)
        # Looked for once per value, not once per address: a Cc of 500 000 addresses took a minute.
        quoted = '"' in value
        good: list[tuple[str, str]] = []
        for name, text in found:
            addr = text.strip().strip("<>")
            if _valid_addr(addr):
                good.append((clean_name(name, quoted), mailbox(addr)))
            elif encoded:
                good += _inside_words(text)
        if not good and "<" not in value:
            # "From: Test test@example.com" (a fax gateway in the corpus): no
            # brackets, so the token with the @ is the address.
            for name, addr in found:
                tokens = addr.split()
                if tokens and _valid_addr(tokens[-1]):
                    good.append((clean_name(name or " ".join(tokens[:-1]), quoted), mailbox(tokens[-1])))
        pairs.extend(good)
    return pairs


def msgids(value: str) -> list[str]:
    """The ids of a Message-ID, In-Reply-To or References value, in order.

    An id longer than the column that holds ids (998) is left out rather
    than cut: a cut id could equal another mail's cut id, and a wrong match
    threads a mail into a stranger's ticket or drops it as a duplicate. No
    mailer writes one (998 characters is the longest line, RFC 5322 section
    2.1.1). A mail left without its Message-ID is handled like any mail that
    came without one, and a reply to it still threads by its subject tag or
    reply address. Control characters need no check here: parse_mail reads
    ids from decoded headers, where they are spaces, and raw_mail drops a
    NUL from the id dedupe_key finds in the raw header.
    """
    ids = re.findall(r"<([^<>\s]+)>", value)
    if not ids and value.strip():
        # Some clients (and a fax gateway in the corpus) write ids bare.
        ids = [tok for tok in value.split() if "@" in tok]
    return [i for i in (i.strip("<>") for i in ids) if len(i) <= MSGID_MAX]
