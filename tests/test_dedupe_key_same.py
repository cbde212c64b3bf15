"""dedupe_key gives every mail the key and Message-ID it was given before its head reading was made cheaper.

Keys already stored must still collide with a second delivery of the same
mail (an SMTP retry, an IMAP refetch), so the functions as they were are
kept here verbatim and compared over the corpus, its variants on the way
in and generated mail.
"""

from __future__ import annotations

import email.parser
import hashlib
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.headers import msgids
from ingest.parse import _TRACE_HEADERS, dedupe_key
from tests.conftest import CORPUS

# ---------------------------------------------------------------- the functions as they were (verbatim)

# Where the header ends: the first empty line, whatever the line ends.
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HASH_CHUNK = 1 << 20


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
    carry = b""
    for offset in range(start, end, chunk):
        piece = carry + view[offset:min(offset + chunk, end)].tobytes()
        # A CR at the end of a piece may start a CRLF that the next piece ends.
        carry = b"\r" if piece.endswith(b"\r") else b""
        digest.update((piece[:-1] if carry else piece).replace(b"\r\n", b"\n"))
    digest.update(carry)
    return digest.hexdigest()


_HEAD_PARSER = email.parser.BytesParser()  # compat32, as email.message_from_bytes


def _message_id_as_written(msg) -> str | None:
    """The first Message-ID of a compat32 head, its raw 8-bit bytes decoded as UTF-8."""
    value = next((v for k, v in msg.raw_items() if k.lower() == "message-id"), "")
    if not isinstance(value, str):
        return None
    return (msgids(value.encode("ascii", "surrogateescape").decode("utf-8", "replace"))[:1] or [None])[0]


def old_dedupe_key(raw: bytes) -> tuple[str, str | None]:
    """dedupe_key as it was."""
    try:
        return _key_by_fields(raw)
    except Exception:  # noqa: BLE001 -- storing the mail comes first; its processing says what is wrong
        return f"raw:{_normalised_body_hash(raw, 0)[:64]}", None


def _key_by_fields(raw: bytes) -> tuple[str, str | None]:
    blank = _BLANK_LINE.search(raw)
    head_end, body_start = (blank.start(), blank.end()) if blank else (len(raw), len(raw))
    body_hash = _normalised_body_hash(raw, body_start)
    # Headers only: a multipart Content-Type would otherwise send the parser
    # looking for its boundary, compiling a new regular expression per mail.
    msg = _HEAD_PARSER.parsebytes(raw[:head_end].replace(b"\r\n", b"\n") + b"\n\n", headersonly=True)
    # The stored payload, not get_payload(): that decodes 8-bit bytes by the Content-Type's charset
    # parameter, and one holding a NUL raised ValueError.
    stray = msg._payload  # noqa: SLF001
    if isinstance(stray, str) and stray.strip():
        # Lines before the first blank one that are no header (a mail with
        # no header block at all, a block of bytes): they are the mail's
        # text, and without them every such mail would share one key.
        body_hash = _normalised_body_hash(raw, 0)
    message_id = (msgids(str(msg.get("message-id", "")))[:1] or [None])[0]
    if message_id:
        # The key hashes the Message-ID as compat32 reads it (8-bit bytes as U+FFFD), as every key
        # stored so far was made; the Message-ID returned for the log and `quarantine list` is
        # its bytes read as UTF-8 (RFC 6532), as the parser reads it.
        key = f"mid:{hashlib.sha256(message_id.encode('utf-8', 'surrogateescape')).hexdigest()[:40]}:{body_hash[:24]}"
        return key, _message_id_as_written(msg) or message_id
    kept = [
        f"{name.lower()}:{value}"
        for name, value in msg.items()
        if name.lower() not in _TRACE_HEADERS and not name.lower().startswith("x-")
    ]
    head_hash = hashlib.sha256("\n".join(kept).encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha:{head_hash[:40]}:{body_hash[:24]}", None


# ---------------------------------------------------------------- the mails compared

def _corpus_mail() -> list[Path]:
    """Every mail file of the corpus: any name but the expected results beside them."""
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".yml", ".yaml", ".json"))


def _head_end(raw: bytes) -> int:
    blank = _BLANK_LINE.search(raw)
    return blank.start() if blank else len(raw)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _folded(raw: bytes) -> bytes:
    """Each field folded after its colon and at every blank, some with a tab, some with runs of blanks."""
    end = _head_end(raw)
    head = raw[:end].replace(b": ", b":\r\n\t", 3).replace(b" ", b"\n  ", 5).replace(b",", b",\r\n \t ")
    return head + raw[end:]


def _variants(raw: bytes) -> dict[str, bytes]:
    """The mail as one route or another may hand it over."""
    end = _head_end(raw)
    return {
        "as is": raw,
        "crlf": _crlf(raw),
        "lf": raw.replace(b"\r\n", b"\n"),
        "mbox line": b"From cust@example.org Mon Mar  3 08:00:00 2025\n" + raw,
        "head cut": raw[:end // 2],
        "head cut, crlf": _crlf(raw)[:_head_end(_crlf(raw)) // 2 + 1],
        "folded": _folded(raw),
        "folded, crlf": _folded(_crlf(raw)),
        "continuation first": b" folded\r\n" + raw,
        "bare cr in head": raw[:end // 3] + b"\r" + raw[end // 3:],
        "8-bit message-id": b"Message-ID: <caf\xc3\xa9-\xe9@example.org>\r\n" + raw,
    }


def _assert_same(raw: bytes) -> None:
    assert dedupe_key(raw) == old_dedupe_key(raw)


_PATHS = _corpus_mail()


def test_the_corpus_is_there():
    assert len(_PATHS) > 100


@pytest.mark.parametrize("path", _PATHS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_mail_keeps_its_key(path):
    raw = path.read_bytes()
    for name, variant in _variants(raw).items():
        assert dedupe_key(variant) == old_dedupe_key(variant), name


def test_generated_mail_keeps_its_key():
    sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        from mailgen import generate
    finally:
        sys.path.pop()
    mails = generate(500, 3)
    assert len(mails) == 500
    for mail in mails:
        for name, variant in _variants(mail.data).items():
            assert dedupe_key(variant) == old_dedupe_key(variant), (mail.index, name)


def test_odd_heads_keep_their_key():
    """Heads a plain reading must not take for plain ones: each goes to the parser as before."""
    for raw in (b"", b"\r\n", b"\n\nbody", b"Subject: x", b"Subject: x\r\n", b"Subject: x\r", b": no name\r\n\r\nb",
                b"Subject: a\r\nFrom someone\r\nTo: b\r\n\r\nbody", b"From a@b Mon\r\nSubject: x\r\n\r\nb",
                b"Subject: x\x0cy\r\n\r\nb", b"Subject: x\x1cy\r\n\r\nb", b"Subject: x\x85y\r\n\r\nb",
                b"Subject:\r\n \r\n\t\r\nMessage-ID:   \r\n <m@x>\r\n\r\nb", b"Subject: \xff\xfe\r\n\r\nb",
                b"Subj\xe9ct: x\r\n\r\nb", b"Subject x\r\n\r\nb", b"Message-ID: m@x\r\n\r\nb",
                b"Message-ID: <a@x>\r\nMessage-ID: <b@x>\r\n\r\nb", b"message-id:<m@x>\n\n  body  \n\n"):
        _assert_same(raw)


_LINE_SOUP = st.lists(st.sampled_from([
    b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"a", b"\xe9", b"\x0c", b"\x1e", b"From ", b"Subject: x",
    b"Message-ID: <m@x>", b"Message-Id:", b"<\xc3\xa9@x>", b"Received: from y", b"X-Spam: 1", b"To: a@b, c@d",
    b"Content-Type: multipart/mixed; boundary=b", b"--b", b"--b--"]), max_size=40).map(b"".join)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_LINE_SOUP, _LINE_SOUP)
def test_any_line_soup_keeps_its_key(head, body):
    _assert_same(head + b"\r\n\r\n" + body if body else head)
