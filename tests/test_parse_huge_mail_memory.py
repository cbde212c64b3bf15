"""A mail as large as the receiver takes by default, made of short lines, is prepared in bounded memory.

The preparing process (ticketd.prepare_pool) parses, strips quotes, writes
the files and sends the result back pickled. Each case is prepared so in a
fresh interpreter, whose own peak (VmHWM) is read from /proc/self/status:
ru_maxrss would keep the peak of the test process it was started from.

Peak growth over the mail's own bytes, for a mail of the default
smtp.max_message_bytes (25 MiB), measured so before and after the stdlib
parser was fed from the bytes in pieces, a single-part body was taken
whole instead of line by line, base64 and quoted-printable were undone in
pieces, an ASCII body was read as stored, and the text without history
stayed one object:

    case                                        before    after
    text/plain, 970 000 25-character lines      232 MB   97-121 MB
    text/plain, 8.7 million 1-character lines    753 MB    67 MB
    quoted-printable text/plain                  198 MB    86 MB
    base64 attachment of 76-character lines      194 MB    69 MB

About 45 MB of the figures after is the pool's pickling of the text sent
back (multiprocessing's ForkingPickler). The bound, six times the mail's
size (157 MB), leaves room over each figure after and fails each before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ticketd.settings import SmtpSettings

ROOT = Path(__file__).resolve().parents[1]
SIZE = SmtpSettings().max_message_bytes
MAX_GROWTH = 6 * SIZE

_HEAD = (b"From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: the log you asked for\r\n"
         b"Message-ID: <huge@example.org>\r\nIn-Reply-To: <t1@example.com>\r\nMIME-Version: 1.0\r\n")
_LINE = b"the quick brown fox jumps\r\n"   # 25 characters and CRLF


def _lines(line: bytes, head: bytes) -> bytes:
    """A single-part mail whose body repeats `line` up to the size limit."""
    return head + line * ((SIZE - len(head) - 1000) // len(line))


def _plain(line: bytes) -> bytes:
    """A text/plain mail of `line` repeated."""
    return _lines(line, _HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n")


def _quoted_printable() -> bytes:
    """A quoted-printable text/plain mail of accented lines."""
    text = "Grüße aus Köln, à bientôt, die Quittung folgt\n".encode() * 600_000
    body = binascii.b2a_qp(text).replace(b"\n", b"\r\n")
    head = _HEAD + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    body = body[:SIZE - len(head) - 1000]
    return head + body[:body.rindex(b"\r\n") + 2]


def _attachment_data() -> bytes:
    """The attached file: random bytes, the same each time."""
    return random.Random(25).randbytes((SIZE - 2000) * 3 // 4 * 76 // 78)


def _base64_attachment() -> bytes:
    """A short text and the file attached base64, in lines of 76 characters."""
    return (_HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nthe log is attached\r\n"
            b'--b\r\nContent-Type: application/octet-stream; name="app.log.gz"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(_attachment_data()).replace(b"\n", b"\r\n") + b"--b--\r\n")


_CASES = {
    "text/plain, 25-character lines": lambda: _plain(_LINE),
    "text/plain, 1-character lines": lambda: _plain(b"x\r\n"),
    "quoted-printable text/plain": _quoted_printable,
    "base64 attachment": _base64_attachment,
}

_CHILD = "import sys; from tests.test_parse_huge_mail_memory import prepare_alone; prepare_alone(*sys.argv[1:])"


def prepare_alone(mail: str, data_dir: str) -> None:
    """In the child: prepare the mail as a preparing process does, pickle the result back, print the figures."""
    from multiprocessing.reduction import ForkingPickler

    from ticketd.domain.signing import Signer
    from ticketd.prepare import Prepared
    from ticketd.prepare_pool import _prepare_in_worker, _start_worker
    from ticketd.settings import Settings

    _start_worker(Settings(data_dir=Path(data_dir)), Signer("huge-mail-secret"), os.getppid())
    row = {"id": 1, "raw": Path(mail).read_bytes(), "envelope_from": None, "envelope_to": "[]"}
    before = _status("VmRSS")
    prepared = _prepare_in_worker(row)
    sent = ForkingPickler.dumps(prepared)   # what the pool sends back to the daemon
    growth = _status("VmHWM") - before
    assert isinstance(prepared, Prepared), prepared
    print(json.dumps({"growth": growth, "sent": len(sent), "text": prepared.parsed.text[:100],
                      "text_bytes": len(prepared.parsed.text.encode()), "stripped": len(prepared.stripped),
                      "text_chars": len(prepared.parsed.text),
                      "files": [[a["size"], a["sha256"]] for a in prepared.attachments]}))


def _status(field: str) -> int:
    """A figure of this process's /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) * 1024


def _prepared_alone(raw: bytes, tmp_path: Path) -> dict:
    """prepare_alone's figures for `raw`, from a fresh interpreter."""
    mail = tmp_path / "huge.eml"
    mail.write_bytes(raw)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(mail), str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", list(_CASES))
def test_a_mail_of_the_size_limit_made_of_short_lines_is_prepared_in_bounded_memory(case, tmp_path):
    raw = _CASES[case]()
    assert SIZE - 2000 < len(raw) <= SIZE
    result = _prepared_alone(raw, tmp_path)
    grew = f"{case}: grew {result['growth'] >> 20} MB preparing a {len(raw) >> 20} MB mail"
    assert result["growth"] < MAX_GROWTH, grew
    if case == "base64 attachment":
        data = _attachment_data()
        assert result["files"] == [[len(data), hashlib.sha256(data).hexdigest()]]
        assert result["text"] == "the log is attached"
    else:
        assert result["files"] == []
        assert result["text"].startswith("the quick brown fox jumps\n" if "25" in case
                                          else "x\n" if "1-char" in case else "Grüße aus Köln, à bientôt")
        # No history in it: the whole text is the writer's, sent back once, not twice.
        assert result["stripped"] == result["text_chars"]
        assert result["sent"] < 1.5 * result["text_bytes"]
