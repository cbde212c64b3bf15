"""The parser and the dedupe key on mail that broke them: reused Message-IDs, receiver fields, odd encodings."""

from __future__ import annotations

import base64
import hashlib
import quopri
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.charsets import decode_bytes
from ingest.headers import parse_addresses
from ingest.parse import b64decode, dedupe_key, parse_mail


def _mail(headers: str, body: str | bytes = "hello\n") -> bytes:
    body = body.encode() if isinstance(body, str) else body
    return headers.strip("\n").encode().replace(b"\n", b"\r\n") + b"\r\n\r\n" + body


def _with_part(part: bytes) -> bytes:
    """A mail with a short text and `part` (its own headers and body) after it."""
    return (b'From: a@example.org\r\nSubject: see attached\r\nMIME-Version: 1.0\r\n'
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\n" + part + b"\r\n--B--\r\n")


# ------------------------------------------------------------ dedupe key

_HEAD = """From: Ann <ann@example.org>
To: support@example.com
Subject: printer broken
Date: Mon, 1 Jan 2024 10:00:00 +0000"""

# What receiving servers put on top of a mail: RFC 5321 trace fields, RFC 7208,
# RFC 8601, RFC 8617, and the local delivery agents' own.
_RECEIVER_FIELDS = [
    "Received: from mx.example.com by imap.example.com; Mon, 1 Jan 2024 10:00:05 +0000",
    "Return-Path: <ann@example.org>",
    "Delivered-To: support@example.com",
    "Envelope-To: support@example.com",
    "X-Original-To: support@example.com",
    "Received-SPF: pass (mx.example.com: domain of ann@example.org designates 192.0.2.1) client-ip=192.0.2.1",
    "Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=ann@example.org; dkim=none",
    "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.com; s=arc; b=AbCd",
    "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=arc; h=from:to; b=EfGh",
    "ARC-Authentication-Results: i=1; mx.example.com; spf=pass smtp.mailfrom=ann@example.org",
]


@pytest.mark.parametrize("message_id", ["Message-ID: <a1@example.org>\n", ""], ids=["with Message-ID", "without"])
@pytest.mark.parametrize("field", _RECEIVER_FIELDS, ids=lambda f: f.split(":")[0])
def test_fields_a_receiving_server_adds_leave_the_key_alone(message_id, field):
    sent = _mail(message_id + _HEAD, "It does not print.\r\n")
    fetched = _mail(f"{field}\nReceived: from relay by mx; Mon, 1 Jan 2024 10:00:02 +0000\n" + message_id + _HEAD,
                    "It does not print.\r\n")
    assert dedupe_key(fetched) == dedupe_key(sent)


@pytest.mark.parametrize("message_id", ["Message-ID: <a1@example.org>\n", ""], ids=["with Message-ID", "without"])
def test_all_receiver_fields_at_once_leave_the_key_alone(message_id):
    sent = _mail(message_id + _HEAD, "It does not print.\r\n")
    fetched = _mail("\n".join(_RECEIVER_FIELDS) + "\n" + message_id + _HEAD, "It does not print.\r\n")
    assert dedupe_key(fetched) == dedupe_key(sent)


_ATOMS = st.sampled_from([
    b"Message-ID: ", b"<1@localhost>", b"From: ", b"Subject: ", b"Date: ", b"\r\n", b"\n", b"\r", b" ", b"\t",
    b":", b"\x00", b"\xff\xfe", b"\xc3\xa9", b"\x80", b"\xed\xb3\xbf", b"=?utf-8?q?=C3=A9?=", b"=?x?b?###?=",
    b"=?utf-16?b?2D3/?=", b"<", b">", b"@", b'"', b"(", b")", b",", b"a@b", b"Mon, 1 Jan 2024 10:00:00 +0000",
    b"31 Feb 99999 25:61:61 +9999", b"0 Jan 0", b"Received: x", b"Content-Type: multipart/mixed; boundary=",
    b'Content-Type: text/plain; charset="utf\x008"', b"not a header",
])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ATOMS, max_size=40).map(b"".join), st.binary(max_size=40))
def test_dedupe_key_never_raises(head, body):
    # It runs before the receiver answers 250: a raise would be a 451 for ever.
    key, message_id = dedupe_key(head + b"\r\n\r\n" + body)
    assert key.startswith(("mid:", "sha:", "raw:")) and len(key) <= 128


def test_a_head_with_a_line_of_text_and_a_charset_holding_a_nul_is_keyed_and_stored():
    """Found by mutating the corpus: a line that is no header, with an 8-bit byte, under a Content-Type whose
    charset holds a NUL made dedupe_key raise, so the receiver answered that mail 451 for ever (and an IMAP
    poll failed on it every time). The line is the mail's text and takes part in the key, as any such line."""
    head = b'From: a@example.org\r\nContent-Type: text/plain; charset="utf\x008"\r\nnot a header \xe9\r\n'
    key, message_id = dedupe_key(head + b"\r\nHelp")
    assert key.startswith("sha:") and message_id is None
    assert dedupe_key(head.replace(b"not a header", b"another line") + b"\r\nHelp")[0] != key


# ------------------------------------------------------------ base64


def _chunked_base64(data: bytes, size: int) -> bytes:
    """Each `size` bytes encoded on its own, padding included, one per line."""
    return b"\r\n".join(base64.b64encode(data[i:i + size]) for i in range(0, len(data), size))


_FILE = bytes(range(256)) * 3 + b"tail"


@pytest.mark.parametrize(("encoded", "decoded"), [
    (b"SGVsbG8=\r\nIHdvcmxk", b"Hello world"),
    (b"SGVsbA==IHdvcmxk", b"Hell world"),
    (b"SGVs bG8=\r\n!IHdv*cmxk\r\n", b"Hello world"),        # garbage characters are skipped
    (b"SGVsbG8=\r\nIHdvcmxkI", b"Hello world"),              # a lone last character holds no byte
    (_chunked_base64(_FILE, 57 * 2 + 1), _FILE),
    (_chunked_base64(_FILE, 100), _FILE),
])
def test_base64_padded_mid_stream_stays_aligned(encoded, decoded):
    assert b64decode(encoded) == decoded


def test_attachment_encoded_chunk_by_chunk_has_its_own_bytes():
    raw = _with_part(b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n" + _chunked_base64(_FILE, 100))
    attachment, = parse_mail(raw).attachments
    assert attachment.sha256 == hashlib.sha256(_FILE).hexdigest()


def test_text_encoded_chunk_by_chunk_reads_as_written():
    raw = _mail("From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: base64", b"SGVsbG8=\r\nIHdvcmxk\r\n")
    assert parse_mail(raw).text == "Hello world"


# ------------------------------------------------------------ forwarded mail sent encoded

_FORWARDED = (b"From: bob@example.net\r\nSubject: Original problem\r\nMIME-Version: 1.0\r\n"
              b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=sel; h=from:subject; bh=abc=\r\n"
              b'Content-Type: multipart/mixed; boundary="I"\r\n\r\n'
              b"--I\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInner body text = sch\xc3\xb6n\r\n"
              b"--I\r\nContent-Type: application/pdf; name=inner.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              b"JVBERi0xLjQgaGVsbG8=\r\n--I--\r\n")


def _encode(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return quopri.encodestring(data)  # a soft line break falls inside the DKIM-Signature header


@pytest.mark.parametrize("ctype", ["message/rfc822", "message/global"])
@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_forwarded_mail_sent_encoded_is_stored_as_the_mail(ctype, cte):
    # RFC 2046 section 5.2.1 forbids either encoding for message/rfc822; mailers use them anyway.
    raw = _with_part(f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode()
                     + _encode(_FORWARDED, cte))
    attachment, inner = parse_mail(raw).attachments  # the forwarded mail, then its own file
    assert attachment.data == _FORWARDED
    assert attachment.sha256 == hashlib.sha256(_FORWARDED).hexdigest()
    assert attachment.filename == "Original problem.eml"
    assert (inner.filename, inner.data) == ("inner.pdf", b"%PDF-1.4 hello")


def test_forwarded_mail_sent_quoted_printable_is_named_by_its_decoded_subject():
    forwarded = _FORWARDED.replace(b"Original problem", "Überweisung".encode())
    raw = _with_part(b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                     + quopri.encodestring(forwarded))
    attachment, _inner_pdf = parse_mail(raw).attachments
    assert attachment.filename == "Überweisung.eml"
    assert attachment.data == forwarded


def test_delivery_report_sent_base64_is_stored_decoded():
    report = b"Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; gone@example.com\r\nStatus: 5.1.1\r\n"
    raw = _with_part(b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                     + _encode(report, "base64"))
    attachment, = parse_mail(raw).attachments
    assert attachment.data == report


@pytest.mark.parametrize(("subject", "name"), [
    ("Invoice 03/2024 overdue", "Invoice 03-2024 overdue.eml"),
    ("C:\\Users\\ann\\report", "C-Users-ann-report.eml"),
])
def test_forwarded_mail_is_named_by_its_whole_subject(subject, name):
    forwarded = f"From: b@example.net\r\nSubject: {subject}\r\n\r\nhi"
    raw = _with_part(f"Content-Type: message/rfc822\r\n\r\n{forwarded}".encode())
    assert [a.filename for a in parse_mail(raw).attachments] == [name]


def test_forwarded_mail_sent_as_is_keeps_its_bytes():
    raw = _with_part(b"Content-Type: message/rfc822\r\n\r\n" + _FORWARDED)
    attachment, _inner_pdf = parse_mail(raw).attachments
    assert attachment.data == _FORWARDED


# ------------------------------------------------------------ byte order mark


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "text/plain", "text/plain; charset=iso-8859-1"])
def test_byte_order_mark_is_not_part_of_the_text(content_type):
    raw = _mail(f"From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: {content_type}",
                b"\xef\xbb\xbfType: bug\r\nSource: web\r\nPrinter broken \xc3\xa4\r\n")
    assert parse_mail(raw).text.startswith("Type: bug\n")


def test_byte_order_mark_is_not_part_of_the_html_text():
    raw = _mail("From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8",
                b"\xef\xbb\xbf<p>Type: bug</p>")
    parsed = parse_mail(raw)
    assert parsed.text.startswith("Type: bug")
    assert parsed.html.startswith("<p>")


@pytest.mark.parametrize("charset", ["utf-8", None, "utf-16le", "windows-1252"])
def test_decoded_bytes_start_without_a_byte_order_mark(charset):
    data = "\ufeffGrüße".encode(charset if charset in ("utf-16le",) else "utf-8")
    assert decode_bytes(data, charset) == "Grüße"


# ------------------------------------------------------------ file names


@pytest.mark.parametrize("header", [
    "Content-Disposition: attachment; filename=\"Uber.pdf\"; filename*=utf-8''%C3%9Cber.pdf",
    "Content-Disposition: attachment; filename*=utf-8''%C3%9Cber.pdf; filename=\"Uber.pdf\"",
    "Content-Disposition: attachment; filename=Uber.pdf; filename*0*=utf-8''%C3%9C; filename*1*=ber.pdf",
    "Content-Disposition: attachment\r\nContent-Type: application/pdf; name=\"Uber.pdf\"; name*=utf-8''%C3%9Cber.pdf",
])
def test_extended_file_name_wins_over_the_plain_one(header):
    # RFC 6266 section 4.3; RFC 2231 section 4 for the charset.
    content_type = "" if "Content-Type" in header else "Content-Type: application/pdf\r\n"
    raw = _with_part(f"{content_type}{header}\r\n\r\n%PDF".encode())
    assert [a.filename for a in parse_mail(raw).attachments] == ["Über.pdf"]


def test_plain_file_name_alone_is_still_the_name():
    raw = _with_part(b'Content-Type: application/pdf; name="other.pdf"\r\n'
                     b'Content-Disposition: attachment; filename="Uber.pdf"\r\n\r\n%PDF')
    assert [a.filename for a in parse_mail(raw).attachments] == ["Uber.pdf"]


# ------------------------------------------------------------ a whole address inside an encoded word


def _b_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _q_word(text: str) -> str:
    encoded = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "@.") else f"={b:02X}"
                      for b in text.encode())
    return "=?utf-8?q?" + encoded + "?="


@pytest.mark.parametrize("word", [
    _b_word('"Иван Петров" <ivan@cust.test>'),
    _b_word("Иван Петров <Ivan@Cust.test>"),
    _q_word("Иван Петров <ivan@cust.test>"),
    '"' + _b_word("Иван Петров <ivan@cust.test>") + '"',                   # quoted as well
    _b_word("Иван ") + " " + _b_word("Петров <ivan@cust.test>"),         # split across two words
], ids=["b quoted name", "b bare name", "q", "inside quotes", "two words"])
def test_a_from_written_as_one_encoded_word_gives_its_name_and_address(word):
    # Webmail and PHP mailers encode "Name <addr>" whole; RFC 2047 section 5 forbids
    # it, and mail clients read it anyway: the address is the sender's, not the text.
    parsed = parse_mail(_mail(f"From: {word}\nTo: support@example.com\nSubject: t"))
    assert (parsed.from_addr, parsed.from_name, parsed.author) == ("ivan@cust.test", "Иван Петров", "ivan@cust.test")
    assert parsed.from_count == 1


def test_every_address_field_reads_addresses_inside_encoded_words():
    parsed = parse_mail(_mail(
        "From: " + _b_word("Anna <anna@cust.test>") + ", " + _b_word("Bob Beispiel <bob@cust.test>") + "\n"
        "Sender: " + _b_word("Bob Beispiel <bob@cust.test>") + "\n"
        "Reply-To: " + _b_word('"Petrova, Anna" <replies@cust.test>') + "\n"
        "To: support@example.com, " + _q_word("Ivan <ivan@cust.test>") + "\n"
        "Cc: " + _b_word("Olga <olga@cust.test>, Pjotr <pjotr@cust.test>") + ", carl@cust.test\n"
        "Subject: t"))
    assert parsed.from_count == 2 and parsed.author == "bob@cust.test" and parsed.from_name == "Bob Beispiel"
    assert parsed.co_authors == ["anna@cust.test"]
    assert (parsed.reply_to, parsed.reply_to_name) == (["replies@cust.test"], "Petrova, Anna")
    assert parsed.to == ["support@example.com", "ivan@cust.test"]
    assert parsed.cc == ["olga@cust.test", "pjotr@cust.test", "carl@cust.test"]


@pytest.mark.parametrize(("header", "name"), [
    # Only the name encoded, as RFC 2047 means it: a comma in it stays in it.
    ("=?iso-8859-1?Q?B=FCrling,=20Andreas?= <real@cust.test>", "Bürling, Andreas"),
    # The address outside is it; the one inside the name is no part of the name.
    (_b_word("Иван <ivan@cust.test>") + " <real@cust.test>", "Иван"),
])
def test_an_encoded_name_beside_an_address_stays_a_name(header, name):
    parsed = parse_mail(_mail(f"From: {header}\nSubject: t"))
    assert (parsed.from_addr, parsed.from_name, parsed.from_count) == ("real@cust.test", name, 1)


@pytest.mark.parametrize("header", [_b_word("Иван Петров"), _b_word("Иван <ivan at cust.test>")])
def test_encoded_words_holding_no_address_give_none(header):
    parsed = parse_mail(_mail(f"From: {header}\nSubject: t"))
    assert (parsed.from_addr, parsed.author, parsed.from_count) == (None, None, 0)


def test_bidi_overrides_are_taken_out_of_subjects_and_names():
    """U+202E turned "\u202etnemyap" into "payment" on an agent's screen; file names lost it already."""
    raw = ("From: =?utf-8?b?" + base64.b64encode("\u202etnemyaP".encode()).decode() + "?= <x@example.org>\r\n"
           "To: Sales \u2067Team\u2069 <support@example.com>\r\nSubject: \u202e null escape \u202d\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nשלום, العربية stay as written\r\n").encode()
    parsed = parse_mail(raw)
    assert parsed.subject == "null escape" and parsed.from_name == "tnemyaP"
    assert "שלום, العربية" in parsed.text   # right-to-left text needs no control characters


@pytest.mark.parametrize(("header", "name"), [
    (_b_word("Bob <bob@example.com>") + " <spoof@cust.test>", "Bob"),
    ('"Bob <bob@example.com>" <spoof@cust.test>', "Bob"),
    ('"Bob (bob@example.com)" <spoof@cust.test>', "Bob"),
    ('"bob@example.com" <spoof@cust.test>', None),
    ('"<bob@example.com>" <spoof@cust.test>', None),
    ('"Support @ ACME" <spoof@cust.test>', "Support @ ACME"),   # an @ between words spells no address
])
def test_an_address_inside_a_display_name_is_no_part_of_it(header, name):
    """ "Hello Bob <bob@example.com>," and "A public reply goes to: Bob <bob@example.com> <spoof@…>" read as
    mail from bob@example.com, an agent perhaps. Names in Reply-To, To and Cc follow the same rule."""
    parsed = parse_mail(_mail(f"From: {header}\nReply-To: {header}\nTo: support@example.com\nCc: {header}\n"
                              "Subject: t"))
    assert (parsed.from_addr, parsed.from_name, parsed.reply_to_name) == ("spoof@cust.test", name, name)
    assert parsed.recipient_names.get("spoof@cust.test") == name


@pytest.mark.parametrize(("header", "name"), [
    ('"\\"Doe, John\\" (boss)" <a@cust.test>', '"Doe, John" (boss)'),
    ('=?utf-8?b?' + base64.b64encode('Ünïcödé, Name "q"'.encode()).decode() + "?= <a@cust.test>",
     'Ünïcödé, Name "q"'),
    ('"Robert \\"Bob\\"" <a@cust.test>', 'Robert "Bob"'),
    ("\"'Jack Smith'\" <a@cust.test>", "Jack Smith"),      # Outlook's quotes around a whole name go
    ("'Jack' <a@cust.test>", "Jack"),
])
def test_quotes_that_belong_to_a_name_stay_in_it(header, name):
    """Quotes were stripped from each end apart: "Hello Doe, John" (boss)," greeted the customer."""
    parsed = parse_mail(_mail(f"From: {header}\nSubject: t"))
    assert (parsed.from_addr, parsed.from_name) == ("a@cust.test", name)


def test_a_dot_ending_an_addresss_domain_is_taken_off():
    """RFC 5321 section 4.1.2: a mailbox's domain has no empty label; "yahoo.com." is a DNS spelling of the
    root, and a smarthost refused the requester's acknowledgement for it (553), for good."""
    parsed = parse_mail(_mail("From: \"Ann\" <Ann@Cust.test.>\nSender: desk@cust.test.\n"
                              "Reply-To: replies@cust.test.\nTo: support@example.com., other@cust.test.\n"
                              "Cc: Carl <carl@cust.test.>\nSubject: t"))
    assert (parsed.from_addr, parsed.from_name, parsed.author) == ("ann@cust.test", "Ann", "ann@cust.test")
    assert parsed.reply_to == ["replies@cust.test"] and parsed.cc == ["carl@cust.test"]
    assert parsed.to == ["support@example.com", "other@cust.test"]
    assert parsed.recipient_names == {"carl@cust.test": "Carl"}
    assert parse_addresses(["desk@cust.test."]) == [("", "desk@cust.test")]


def test_a_display_name_of_one_long_word_is_read_in_linear_time():
    """Encoded words folded over short lines decode into one word of any length: looking for an address in
    it from every character took time growing with its square (a 125 kB From held a worker for minutes).
    The bound is far above a linear pass."""
    word = "=?utf-8?q?" + "a" * 60 + "?="
    raw = ("From: " + "\r\n ".join([word] * 2000) + " <eve@example.org>\r\nTo: support@example.com\r\n"
           "Subject: hi\r\nMessage-ID: <long-name@example.org>\r\n\r\nbody\r\n").encode()
    started = time.perf_counter()
    parsed = parse_mail(raw)
    assert time.perf_counter() - started < 5
    assert parsed.from_addr == "eve@example.org" and parsed.from_name.endswith("…")


def test_an_angle_bracket_before_a_long_run_of_at_signs_in_a_name_is_read_in_linear_time():
    from ingest.headers import clean_name

    started = time.perf_counter()
    clean_name("<" + "@" * 100_000)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("field", ["From", "To", "Cc", "Reply-To"])
def test_comments_nested_past_the_stdlibs_recursion_still_give_the_addresses(field):
    """The stdlib reads a comment in a comment by recursing: 2 000 nested "(" raised RecursionError and
    quarantined the mail. The value is read again without its comments."""
    head = {"From": "Eve <eve@example.org>", "To": "support@example.com", "Subject": "hi",
            "Message-ID": "<deep@example.org>"}
    head[field] = f"Eve <eve@example.org> (one {'(' * 2000}deep{')' * 2000}), ann@example.org (Ann)"
    parsed = parse_mail(("".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\nbody\r\n").encode())
    read = {"From": [parsed.author], "To": parsed.to, "Cc": parsed.cc}.get(field)
    if read is not None:
        assert "eve@example.org" in read
    assert parsed.text.strip() == "body"


def test_without_comments_keeps_quoted_strings_and_escapes():
    from ingest.headers import without_comments

    assert without_comments('"a (b)" <x@y> (c (d) \\) e) f') == '"a (b)" <x@y>  f'
    assert without_comments("x@y (" * 3) == "x@y "
    assert without_comments('"\\"(" <x@y>') == '"\\"(" <x@y>'
