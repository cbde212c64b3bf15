"""A multipart mail with no boundary, or one its body never uses, keeps the customer's words as its text."""

from __future__ import annotations

import base64
import hashlib
import json
import smtplib

from ingest.boundaries import used_boundary
from ingest.parse import parse_mail
from tests.cli import cli_ok
from tests.conftest import write_config
from ticketd.pipeline import drain

WORDS = "Grüße, der Drucker brennt – bitte helfen Sie."
CSV = b"Order,Item\r\n1042,Toner\r\n"


def _parts(boundary: str) -> bytes:
    """A text part sent base64 (so its words are nowhere in the bytes as written) and a CSV file."""
    return (f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{base64.b64encode(WORDS.encode()).decode()}\r\n\r\n--{boundary}\r\n"
            'Content-Type: text/csv; name="orders.csv"\r\nContent-Transfer-Encoding: base64\r\n'
            'Content-Disposition: attachment; filename="orders.csv"\r\n\r\n'
            f"{base64.b64encode(CSV).decode()}\r\n--{boundary}--\r\n").encode()


CASES = {  # subject: (Content-Type, body, the files expected)
    "no boundary, words only": ("multipart/mixed; charset=utf-8", f"{WORDS}\r\n-- \r\nJürgen\r\n".encode(), []),
    "boundary never used": ('multipart/alternative; boundary="=_abc"; charset=utf-8', WORDS.encode(), []),
    "no boundary, parts": ("multipart/mixed", _parts("----=_Part_17_1234.5678"), ["orders.csv"]),
    "empty boundary, parts": ('multipart/mixed; boundary=""', _parts("b1_4f2c"), ["orders.csv"]),
    "boundary in another case": ('multipart/mixed; boundary="=_NextPart_ABC"', _parts("=_NextPart_abc"),
                                 ["orders.csv"]),
}
EXPECTED_TEXT = {"no boundary, words only": f"{WORDS}\n-- \nJürgen"}


def test_a_multipart_mail_without_its_boundary_keeps_the_customer_s_words_and_files(receiver_app, tmp_path, db_url):
    app, receiver = receiver_app
    config = write_config(tmp_path, db_url)  # the same database and data_dir, for the CLI
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        for n, (subject, (content_type, body, _)) in enumerate(CASES.items()):
            raw = (f"From: Kunde <cust@example.org>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
                   f"Message-ID: <nb{n}@client.example.org>\r\nMIME-Version: 1.0\r\n"
                   f"Content-Type: {content_type}\r\n\r\n").encode() + body
            assert client.sendmail("cust@example.org", ["support@example.com"], raw) == {}
    assert drain(app) == len(CASES)
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    tickets = {t["subject"]: t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json"))}

    seen = {}
    for subject in CASES:
        shown = json.loads(cli_ok(config, "tickets", "show", str(tickets[subject]), "--json"))
        [message] = [m for m in shown["messages"] if m["direction"] == "in"]
        seen[subject] = (message["full_text"], [(a["filename"], a["sha256"]) for a in message["attachments"]])
    assert seen == {subject: (EXPECTED_TEXT.get(subject, WORDS), [(f, hashlib.sha256(CSV).hexdigest()) for f in files])
                    for subject, (_, _, files) in CASES.items()}


def test_only_a_delimiter_line_followed_by_a_part_s_header_names_the_boundary():
    assert used_boundary("preamble\n--=_a b'c\r\nContent-Type: text/plain\r\n\r\nHi\r\n--=_a b'c--\r\n") == "=_a b'c"
    assert used_boundary("--abc  \ncontent-transfer-encoding: base64\n") == "abc"   # padding, any case
    assert used_boundary("Hello\n-- \nJürgen\nContent-Type: is my job title\n") is None  # a signature separator
    assert used_boundary("--abc\nFrom: someone\n") is None
    assert used_boundary("--" + "x" * 71 + "\nContent-Type: text/plain\n") is None      # longer than RFC 2046 allows


def test_a_stray_8_bit_line_folded_into_the_content_type_still_gives_the_parts():
    """A header block the parser repairs folds a line that is no header (here with a byte of Latin-1) into the
    Content-Type above it: reading the parts again wrote that type back as a header and failed on the byte,
    so the mail was quarantined instead of opening a ticket with the customer's words and file."""
    raw = (b"From: Dana <dana@example.org>\nTo: support@example.com\nSubject: Files\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed\nX-Stray\xc8 line\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\n"
           + _parts("b1_4f2c").replace(b"\r\n", b"\n"))
    parsed = parse_mail(raw)
    assert parsed.text == WORDS
    assert [(a.filename, a.data) for a in parsed.attachments] == [("orders.csv", CSV)]
