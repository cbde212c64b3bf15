"""Corpus mail with bytes changed at random (a seeded mutation) still parses and is keyed without raising.

A raise in dedupe_key is a 451 for ever before the 250; one in parse_mail
quarantines the mail. tests/test_mutated_mail.py holds the cases such runs
found, end to end; this keeps looking with fixed seeds.
"""

from __future__ import annotations

import random

import pytest

from ingest.headers import MEDIA_TYPE
from ingest.parse import dedupe_key, parse_mail
from ingest.quotes import strip_reply
from tests.conftest import CORPUS

MAILS = sorted(p for p in CORPUS.rglob("*") if p.is_file() and (p.suffix in (".box", ".eml") or
                                                                   "bestpractical-rt" in p.parts and not p.suffix))
# Pieces of MIME and header syntax a mutation may put in, besides random bytes.
PIECES = [b"\r\n", b"\n", b"=?utf-8?b?", b"=?iso-8859-1?q?", b"?=", b"--", b"boundary=", b'"', b"<", b">", b";",
          b"\x00", b"\xff\xfe", b"\xc3", b"=\n", b"Content-Type: multipart/mixed; boundary=x\n",
          b"Content-Transfer-Encoding: base64\n", b'Content-Type: text/plain; charset="utf\x008"\n',
          b"Content-Disposition: attachment; filename*=utf-8''%ff%fe\n", b"message/rfc822", b"application/ms-tnef"]


def _mutated(rnd: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        if not data:
            break
        # Most changes in the header block and the first parts' heads, where parsing decides the most.
        at = rnd.randrange(min(len(data), 2500)) if rnd.random() < 0.7 else rnd.randrange(len(data))
        roll = rnd.random()
        if roll < 0.25:
            data[at] = rnd.randrange(256)
        elif roll < 0.45:
            del data[at:at + rnd.randint(1, 200)]
        elif roll < 0.75:
            data[at:at] = rnd.choice(PIECES)
        elif roll < 0.9:
            data[at:at] = data[at:at + rnd.randint(1, 400)] * rnd.randint(1, 5)
        else:
            del data[at:]   # cut short, as a connection lost mid-DATA leaves it
    return bytes(data)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_corpus_mail_parses_and_is_keyed(seed):
    assert len(MAILS) > 100
    rnd = random.Random(seed)
    for _ in range(150):
        path = rnd.choice(MAILS)
        raw = _mutated(rnd, path.read_bytes())
        key, _ = dedupe_key(raw)
        assert key.startswith(("mid:", "sha:", "raw:")), path
        parsed = parse_mail(raw)
        strip_reply(parsed.text or "")
        # What is stored must be text both databases take: no surrogate left of an 8-bit byte.
        stored = [parsed.text, parsed.subject, parsed.from_name or "", parsed.author or "",
                  *(a.filename for a in parsed.attachments), *(a.content_type for a in parsed.attachments)]
        assert all(_encodable(value) for value in stored), path
        assert all(MEDIA_TYPE.fullmatch(a.content_type) for a in parsed.attachments), path


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
