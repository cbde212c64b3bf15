"""Small or plain mails built to make parsing slow or big: each is refused with its reason or read in bounded time
and memory.

Every case is parsed (with the HTML cleaning and quote stripping that preparing a mail adds) in a process of its
own, so its peak memory can be read and a parse that never ends fails the test instead of hanging it.
"""

from __future__ import annotations

import base64

import pytest

from ingest.html_clean import clean_html
from ingest.parse import MailTooComplex, parse_mail
from ingest.quotes import own_reply
from tests.bounds import run_alone
from tests.tnef_builder import File, tnef

MAX_SECONDS = 5.0
MAX_GROWTH_MB = 200   # over what the mail itself takes, ten times over (the parser holds a few copies of it)

_HEAD = b"From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nMIME-Version: 1.0\r\n"


def _multipart(*parts: bytes) -> bytes:
    return (_HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            + b"".join(b"--B\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n")


def _nested_multipart(levels: int) -> bytes:
    opens = b"".join(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1)
                     for i in range(levels))
    return (_HEAD + b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + opens
            + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n" % levels)


def _winmail(data: bytes) -> bytes:
    return _multipart(b"Content-Type: text/plain\r\n\r\nsee attached",
                      b'Content-Type: application/ms-tnef; name="winmail.dat"\r\n'
                      b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data))


def _encoded_words_subject(words: int) -> bytes:
    return (b"From: ann@example.org\r\nTo: support@example.com\r\nSubject:"
            + b"\r\n".join([b" =?utf-8?q?=C3=A9t=C3=A9?="] * words) + b"\r\n\r\nhi\r\n")


def _many_cc(count: int) -> bytes:
    cc = b",\r\n ".join(b"u%d@example.org" % i for i in range(count))
    return b"From: ann@example.org\r\nTo: support@example.com\r\nCc: " + cc + b"\r\nSubject: hi\r\n\r\nhi\r\n"


_CASES = {
    # name: (mail, what parsing must say: "refused: <reason>" or "read")
    "multipart nested 5000 deep": (lambda: _nested_multipart(5000), "refused: MIME nesting"),
    "100 000 parts": (lambda: _multipart(*[b"Content-Type: text/plain\r\n\r\nx"] * 100_000),
                      "refused: more than 500 MIME parts"),
    "winmail.dat holding 3000 files": (lambda: _winmail(tnef([File(f"f{i}.txt", b"x") for i in range(3000)])),
                                       "refused: more than 500 MIME parts"),
    "winmail.dat holding 15 MB of zeros": (lambda: _winmail(tnef([File("zeros.bin", b"\0" * 15_000_000)])), "read"),
    "winmail.dat holding HTML nested a million deep": (lambda: _winmail(tnef(html="<div>" * 1_000_000)), "read"),
    "HTML nested a million deep": (lambda: _HEAD + b"Content-Type: text/html\r\n\r\n" + b"<div><b>" * 500_000,
                                   "read"),
    "subject of 100 000 encoded words": (lambda: _encoded_words_subject(100_000), "read"),
    "quoted-printable line of 20 MB": (
        lambda: _HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"=41" * 6_666_667 + b"\r\n", "read"),
    # Each line opens an inline uuencoded file that no `end` line closes.
    "text of 20 000 uuencode begin lines": (
        lambda: _HEAD + b"Content-Type: text/plain\r\nIn-Reply-To: <x@example.org>\r\n\r\n"
        + b"begin 644 a.txt\r\n" * 20_000, "read"),
    "Cc of 300 000 addresses": (lambda: _many_cc(300_000), "read"),
}


def _work(case: str):
    """Prepare the case's mail as intake does (run by tests.bounds in a process of its own)."""
    raw = _CASES[case][0]()

    def work() -> dict:
        try:
            parsed = parse_mail(raw)
            clean_html(parsed.html)
            own_reply(parsed.text)
            outcome = "read"
        except MailTooComplex as exc:
            outcome = f"refused: {exc}"
        return {"outcome": outcome, "size": len(raw)}
    return work


@pytest.mark.parametrize("case", list(_CASES))
def test_a_hostile_mail_is_parsed_or_refused_in_bounded_time_and_memory(case):
    result = run_alone(__name__, case, timeout=60, doing="parsing")
    assert result["outcome"].startswith(_CASES[case][1]), result
    assert result["seconds"] < MAX_SECONDS, result
    assert result["growth"] < (MAX_GROWTH_MB << 20) + 10 * result["size"], result
