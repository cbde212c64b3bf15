"""A file's name is the sender's to choose: it never picks where the file is kept, and what we show or send is safe.

Files are kept by sha256 under data_dir; the name is only shown, sent on with the file in our mail, and used
by `ticketd tickets files --out` for the copies. A name that would climb out of a directory, hide its real
extension, or name a Windows device (where the file could not be saved) is made safe once, at ingest.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from tests.cli import cli_ok
from tests.desk import open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"

# Content-Disposition parameter as sent -> the name kept, shown and sent on.
NAMES = {
    'filename="CON.txt"': "_CON.txt",
    'filename="nul"': "_nul",
    'filename="Com1.tar.gz"': "_Com1.tar.gz",
    "filename*=utf-8''lpt9%20.pdf": "_lpt9 .pdf",
    'filename="console.txt"': "console.txt",                       # a word that begins like one is no device
    'filename="../../etc/passwd"': "passwd",
    'filename="..\\\\..\\\\windows\\\\win.ini"': "win.ini",
    "filename*=utf-8''invoice%E2%80%AEfdp.exe": "invoicefdp.exe",   # U+202E would show "exe.pdf"
    "filename*=utf-8''a%00b%0D%0AX-Evil%3A%201.pdf": "a b  X-Evil 1.pdf",   # controls read as spaces
    'filename=".."': "image.png",                                  # no name left: named by its type
}


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _mail_with_files() -> bytes:
    parts = [b"Content-Type: text/plain\r\n\r\nThe files.\r\n"]
    for i, param in enumerate(NAMES):
        parts.append(f"Content-Type: image/png\r\nContent-Disposition: attachment; {param}\r\n"
                     f"Content-Transfer-Encoding: 7bit\r\n\r\nfile {i}\r\n".encode())
    return (f"From: Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: files\r\n"
            "Message-ID: <files@client.example.org>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="B"\r\n\r\n').encode() + b"".join(
        b"--B\r\n" + p for p in parts) + b"--B--\r\n"


def test_hostile_file_names_are_kept_shown_sent_and_copied_safely(desk, tmp_path):
    desk.send_raw(_mail_with_files(), mail_from=CUSTOMER)
    ticket_id = desk.ticket()["id"]
    assert desk.assign(ticket_id) == ALICE
    expected = list(NAMES.values())

    config = tmp_path / "ticketd.yaml"
    listed = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--json"))
    assert [f["filename"] for f in listed] == expected

    root = desk.app.settings.attachments_dir
    kept = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert kept == sorted(hashlib.sha256(f"file {i}".encode()).hexdigest() for i in range(len(NAMES)))

    notice = desk.last(ALICE)
    assert [part.get_filename() for part in notice.iter_attachments()] == expected

    out = tmp_path / "out"
    copied = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--out", str(out), "--json"))
    assert [c["copied_to"] for c in copied] == [str(out / f"{c['message']}-{name}")
                                                for c, name in zip(copied, expected)]
    assert all(re.fullmatch(r"\d+-[^/\\]+", p.name) for p in out.iterdir())
