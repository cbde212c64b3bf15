"""The parser on hand-made nasty mail, and the subject tag under any reply prefix."""

from __future__ import annotations

import base64
import email
import email.parser
import hashlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.headers import msgids
from ingest.parse import (
    _TRACE_HEADERS,
    MailTooComplex,
    _normalised_body_hash,
    dedupe_key,
    parse_mail,
    safe_filename,
    unflow,
)
from tests.conftest import CORPUS
from ticketd.domain.ids import MAX_ID
from ticketd.domain.tags import SUBJECT_MAX, find_tags, shortened, tagged_subject


def _mail(headers: str, body: str | bytes = "hello\n") -> bytes:
    body = body.encode() if isinstance(body, str) else body
    return headers.strip("\n").encode().replace(b"\n", b"\r\n") + b"\r\n\r\n" + body


def _nested(depth: int) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth))
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return b"From: a@example.com\nSubject: deep\nMIME-Version: 1.0\n" + opening + \
        b"Content-Type: text/plain\n\nhello" + closing


# ------------------------------------------------------------ structure


def test_mbox_from_line_is_not_a_header():
    parsed = parse_mail(b"From someone@example.com Sat Jan  3 01:05:34 1996\n" + _mail(
        "From: Alice <alice@example.com>\nSubject: hi"))
    assert parsed.from_addr == "alice@example.com"
    assert parsed.subject == "hi"
    assert "from someone" not in parsed.headers


def test_multipart_without_boundary_is_shown_as_text():
    parsed = parse_mail(_mail("From: a@example.com\nContent-Type: multipart/mixed",
                              "--x\nContent-Type: text/plain\n\nthe words\n--x--\n"))
    assert "the words" in parsed.text
    assert "NoBoundaryInMultipartDefect" in parsed.defects


def test_boundary_never_found_keeps_the_text():
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="nowhere"',
                              "just text, no parts\n"))
    assert "just text, no parts" in parsed.text


@pytest.mark.parametrize("depth", [21, 25, 3000])
def test_nesting_past_the_limit_is_too_complex(depth):
    # 3000 levels would blow the stdlib parser's recursion: that is refused too.
    with pytest.raises(MailTooComplex):
        parse_mail(_nested(depth), max_depth=20)


def test_nesting_within_the_limit_parses():
    assert parse_mail(_nested(19), max_depth=20).text == "hello"
    assert parse_mail(_nested(25), max_depth=30).text == "hello"


def test_too_many_parts_is_too_complex():
    parts = "".join(f"--b\nContent-Type: application/octet-stream; name=f{i}.bin\n\nx\n" for i in range(600))
    raw = _mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="b"', parts + "--b--\n")
    with pytest.raises(MailTooComplex):
        parse_mail(raw, max_parts=500)
    assert len(parse_mail(raw, max_parts=1000).attachments) == 600


def test_header_block_broken_by_a_bare_line_is_repaired():
    # A spam filter's unindented continuation ended the headers for the stdlib.
    raw = _mail("From: a@example.com\nX-Filter: AAAA\nBBBBBBBBBBBBBBBBB\nSubject: still a header\nTo: b@example.com",
                "the body\n")
    parsed = parse_mail(raw)
    assert parsed.subject == "still a header"
    assert parsed.to == ["b@example.com"]
    assert parsed.text == "the body"


# ------------------------------------------------------------ headers


@pytest.mark.parametrize("subject, expected", [
    ("=?utf-8?B?!!!notbase64?=", "=?utf-8?B?!!!notbase64?="),         # kept as written
    ("=?no-such-charset?Q?caf=E9?=", "café"),                          # unknown charset: guessed
    ("=?utf-8?Q?=ZZbad?=", "=ZZbad"),
    ("=?utf-8?B?w6k?=", "é"),                                          # missing padding
    ("=?utf-8?Q?unterminated", "=?utf-8?Q?unterminated"),
    ("=?utf-8?B?w6?= =?utf-8?B?qQ==?=", "é"),                          # short padding, split character
    ("=?utf-8?Q?=C3?= =?utf-8?Q?=A9t=C3=A9?=", "été"),                 # a character split across words
    ("=?iso-8859-1*de?Q?gr=FC=DFe?=", "grüße"),                        # RFC 2231 language tag
    ("Re: =?utf-8?q?caf=C3=A9?= und mehr", "Re: café und mehr"),
    ("=?unicode-1-1-utf-7?Q?+ANw-bermittlung?=", "Übermittlung"),
])
def test_garbage_encoded_words_never_raise(subject, expected):
    assert parse_mail(_mail(f"From: a@example.com\nSubject: {subject}")).subject == expected


def test_line_break_inside_an_encoded_word_never_reaches_a_header():
    evil = base64.b64encode(b"Hello\r\nBcc: victim@example.com\r\n").decode()
    parsed = parse_mail(_mail(f"From: =?utf-8?B?{evil}?= <a@example.com>\nSubject: =?utf-8?B?{evil}?="))
    assert parsed.subject == "Hello  Bcc: victim@example.com"
    assert (parsed.from_name, parsed.from_addr) == ("Hello Bcc:", "a@example.com")
    assert all("\n" not in v and "\r" not in v for v in parsed.headers.values())


@pytest.mark.parametrize("raw_subject, expected", [
    ("Grüße aus München".encode(), "Grüße aus München"),                  # RFC 6532 UTF-8
    ("Grüße aus München".encode("latin-1"), "Grüße aus München"),
    ("тест тест".encode("koi8-r"), "тест тест"),
    ("привет мир".encode("cp1251"), "привет мир"),
])
def test_raw_8bit_headers_are_read_in_their_charset(raw_subject, expected):
    raw = b"From: a@example.com\r\nSubject: " + raw_subject + b"\r\n\r\nx\r\n"
    assert parse_mail(raw).subject == expected


def test_raw_8bit_header_follows_the_charset_the_mail_declares():
    raw = ("From: a@example.com\r\nSubject: ".encode() + "整体提升企业服务水平".encode("gb2312")
           + b"\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n" + "你好".encode("gb2312"))
    parsed = parse_mail(raw)
    assert parsed.subject == "整体提升企业服务水平"
    assert parsed.text == "你好"


def test_encoded_display_name_with_a_comma_stays_one_name():
    parsed = parse_mail(_mail("From: =?utf-8?B?TcO8bGxlciwgQmVybmQ=?= <bernd@example.com>\n"
                              "Cc: =?iso-8859-1?Q?B=FCrling,=20Andreas?= <andreas@example.com>, c@example.com"))
    assert (parsed.from_name, parsed.from_addr, parsed.from_count) == ("Müller, Bernd", "bernd@example.com", 1)
    assert parsed.cc == ["andreas@example.com", "c@example.com"]


def test_several_from_addresses_carry_no_authority():
    parsed = parse_mail(_mail("From: a@example.com, b@example.com"))
    assert parsed.from_addr is None and parsed.from_count == 2
    # The customer side still has one author: the first, or the Sender among them (RFC 5322 3.6.2).
    assert (parsed.author, parsed.co_authors) == ("a@example.com", ["b@example.com"])
    parsed = parse_mail(_mail("From: A <a@example.com>, B <b@example.com>\nSender: b@example.com"))
    assert (parsed.author, parsed.from_name, parsed.co_authors) == ("b@example.com", "B", ["a@example.com"])
    assert parse_mail(_mail("From: MAILER-DAEMON (Mail Delivery System)")).author is None
    assert parse_mail(_mail("From: One <one@example.com>")).author == "one@example.com"


def test_message_ids_bare_or_bracketed():
    parsed = parse_mail(_mail("From: a@example.com\nMessage-Id: 123.456@fax.example.com\n"
                              "References: <a@x> <b@x>\n\t<c@x>\nIn-Reply-To: <c@x> (comment)"))
    assert parsed.message_id == "123.456@fax.example.com"
    assert parsed.references == ["a@x", "b@x", "c@x"]
    assert parsed.in_reply_to == ["c@x"]


# ------------------------------------------------------------ bodies


def test_html_only_mail_gives_readable_text():
    markup = ("<html><head><style>p {color: red}</style><title>t</title></head><body>"
              "<div>Hello&nbsp;there,</div><p>the printer is <b>on fire</b> &amp; smoking.</p>"
              "<div style='display:none'>preheader junk</div><ul><li>one</li><li>two</li></ul>"
              "<a href='https://example.com/ticket'>see here</a><br>Bob"
              "<blockquote><div>On Monday you wrote:</div><div>old text</div></blockquote></body></html>")
    parsed = parse_mail(_mail("From: a@example.com\nContent-Type: text/html; charset=utf-8", markup))
    assert parsed.html == markup
    assert parsed.text == ("Hello there,\n\nthe printer is on fire & smoking.\n\n- one\n- two\n\n"
                           "see here <https://example.com/ticket>\nBob\n> On Monday you wrote:\n> old text")


def test_plain_alternative_is_the_text_and_html_is_kept():
    body = ("--a\nContent-Type: text/plain; charset=utf-8\n\nplain words\n"
            "--a\nContent-Type: text/html; charset=utf-8\n\n<p>html words</p>\n--a--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/alternative; boundary="a"', body))
    assert parsed.text == "plain words"
    assert parsed.html == "<p>html words</p>"  # the line break before a boundary is the boundary's


def test_empty_plain_alternative_falls_back_to_the_html():
    body = ("--a\nContent-Type: text/plain\n\n\n--a\nContent-Type: text/html\n\n<b>some html text</b>\n--a--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/alternative; boundary="a"', body))
    assert parsed.text == "some html text"


def test_inline_cid_image_is_an_attachment():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    body = ("--r\nContent-Type: text/html; charset=utf-8\n\n<p>look: <img src=\"cid:img1@x\"></p>\n"
            f"--r\nContent-Type: image/png\nContent-ID: <img1@x>\nContent-Transfer-Encoding: base64\n\n{png}\n"
            "--r--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/related; boundary="r"', body))
    assert parsed.text == "look:"
    [image] = parsed.attachments
    assert (image.filename, image.content_type, image.content_id, image.inline) == \
        ("image.png", "image/png", "img1@x", True)
    assert image.data == b"\x89PNG\r\n\x1a\nfake"


def test_apple_mail_interleaved_text_parts_are_one_body():
    body = ("--m\nContent-Type: text/plain\n\nbefore the picture\n"
            "--m\nContent-Type: image/jpeg; name=a.jpg\nContent-Disposition: inline; filename=a.jpg\n\nJPEG\n"
            "--m\nContent-Type: text/plain\n\nafter the picture\n--m--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="m"', body))
    assert parsed.text == "before the picture\nafter the picture"
    assert [a.filename for a in parsed.attachments] == ["a.jpg"]


def test_truncated_base64_and_bare_uuencode_still_decode():
    body = ("--m\nContent-Type: text/plain\n\nsee files\n"
            "--m\nContent-Type: video/quicktime\nContent-Transfer-Encoding: base64\n\n/9j/4AAQSkZJABC123456\n"
            "--m\nContent-Type: application/msword; name=x.txt\nContent-Transfer-Encoding: x-uuencode\n\n"
            ",2&5L;&\\@6F%M;6%D\n`\n--m--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="m"', body))
    video, doc = parsed.attachments
    assert video.data == base64.b64decode("/9j/4AAQSkZJABC12345"[:20])
    assert (video.filename, doc.filename, doc.data) == ("video.mov", "x.txt", b"Hello Zammad")


def test_format_flowed_is_unflowed():
    assert unflow("This is a \nlong line.\n> quoted \n> more\nnext") == "This is a long line.\n> quoted more\nnext"
    assert unflow("joined \nwith delsp", delsp=True) == "joinedwith delsp"
    assert unflow("-- \nsignature") == "-- \nsignature"
    parsed = parse_mail(_mail("From: a@example.com\nContent-Type: text/plain; format=flowed", "one \ntwo\n"))
    assert parsed.text == "one two"


def test_wrong_or_missing_body_charsets():
    # Declared latin-1 but really UTF-8 (common), undeclared 8-bit, and
    # UTF-8 with a stray latin-1 byte.
    latin_label = parse_mail(_mail("From: a@example.com\nContent-Type: text/plain; charset=iso-8859-1",
                                   "Grüße".encode()))
    undeclared = parse_mail(_mail("From: a@example.com", "Grüße".encode("latin-1")))
    stray = parse_mail(_mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8",
                             "Grüße ".encode() + b"\xe9t\xe9 " + "déjà vu".encode()))
    assert (latin_label.text, undeclared.text, stray.text) == ("Grüße", "Grüße", "Grüße été déjà vu")


def test_iso_2022_jp_with_nec_characters():
    raw = (b"From: a@example.com\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n"
           b"\x1b$B-!#1ET#38)$N03$H!\"\x1b(B\r\n")
    assert parse_mail(raw).text == "①１都３県の鯵と、"


def test_nul_bytes_never_reach_text():
    parsed = parse_mail(_mail("From: a@example.com\nSubject: a\x00b", b"te\x00xt\n"))
    assert parsed.text == "text"
    assert "\x00" not in parsed.subject


# ------------------------------------------------------------ file names


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Windows\\evil.exe", "evil.exe"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),        # RIGHT-TO-LEFT OVERRIDE removed
    ("a\x00b\x1f.txt", "ab.txt"),
    ('what?<>|*:".txt', "what.txt"),
    ("...", "file.bin"),
    ("", "file.bin"),
    (None, "file.bin"),
    ("e\u0301cran.png", "écran.png"),                  # NFC
])
def test_safe_filename(name, expected):
    assert safe_filename(name, "application/octet-stream") == expected


def test_long_filenames_keep_their_extension():
    name = safe_filename("ä" * 300 + ".pdf", "application/pdf")
    assert len(name.encode()) <= 255 and name.endswith(".pdf")


def test_attachment_names_from_mime_parameters():
    body = ("--m\nContent-Type: text/plain\n\nbody\n"
            "--m\nContent-Type: application/pdf\nContent-Disposition: attachment;\n"
            " filename*=utf-8''%E2%82%AC%20rate%2Fcard.pdf\n\n%PDF\n"
            "--m\nContent-Type: application/pdf; name=\"=?utf-8?Q?gr=C3=BC=C3=9Fe.pdf?=\"\n\n%PDF\n"
            "--m\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"../../x.pdf\"\n\n%PDF\n"
            "--m\nContent-Type: image/jpeg\nContent-ID: <image001.jpg@01CDB132.D8A510F0>\n\nJPEG\n"
            "--m\nContent-Type: message/rfc822\n\nSubject: Forwarded: one\n\ninner\n--m--\n")
    parsed = parse_mail(_mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="m"', body))
    assert [a.filename for a in parsed.attachments] == [
        "card.pdf", "grüße.pdf", "x.pdf", "image001.jpg", "Forwarded one.eml"]
    assert parsed.attachments[-1].data.replace(b"\r\n", b"\n") == b"Subject: Forwarded: one\n\ninner"


# ------------------------------------------------------------ never raises


_SAMPLES = [p.read_bytes() for p in sorted((CORPUS / "zammad").glob("mail0[0-2]*.box"))[:12]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw):
    try:
        parsed = parse_mail(raw)
    except MailTooComplex:
        return
    assert isinstance(parsed.text, str) and "\x00" not in parsed.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_SAMPLES))), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                      min_size=1, max_size=30))
def test_damaged_real_mail_never_raises(index, flips):
    raw = bytearray(_SAMPLES[index])
    for position, value in flips:
        raw[position % len(raw)] = value
    try:
        parse_mail(bytes(raw))
    except MailTooComplex:
        pass


# ------------------------------------------------------------ subject tags (ticketd/domain/tags.py)

_PREFIXES = st.sampled_from(["Re: ", "RE: ", "Fwd: ", "FW: ", "AW: ", "WG: ", "Re[2]: ", "Antw: ", "SV: ",
                             "R: ", "re:", "Fwd:Re: ", "Ответ: ", "回复：", "转发: "])


@settings(max_examples=300)
@given(ticket=st.integers(1, MAX_ID), subject=st.text(max_size=80),
       before=st.lists(_PREFIXES, max_size=5), after=st.lists(_PREFIXES, max_size=5))
def test_tag_survives_any_reply_prefixes(ticket, subject, before, after):
    tagged = tagged_subject(ticket, "".join(before) + subject)
    assert ticket in find_tags(tagged)
    assert ticket in find_tags("".join(after) + tagged)  # the customer's client adds its own
    assert tagged_subject(ticket, tagged) == tagged
    assert tagged_subject(ticket, "".join(after) + tagged) == tagged


@pytest.mark.parametrize(("subject", "shown"), [
    ("Printer on fire", "Printer on fire"), ("x" * SUBJECT_MAX, "x" * SUBJECT_MAX),
    ("x" * 20005, "x" * (SUBJECT_MAX - 1) + "…"),
    ("wordy " * 60, ("wordy " * 41).strip() + "…"),                               # after a word near the end
    ("x" * (SUBJECT_MAX - 2) + "e\u0301" + "tail", "x" * (SUBJECT_MAX - 2) + "…"),  # é stays whole
    ("x" * (SUBJECT_MAX - 2) + "\U0001f1e9\U0001f1ea" + "y" * 10, "x" * (SUBJECT_MAX - 2) + "…"),  # 🇩🇪 whole
    ("x" * (SUBJECT_MAX - 3) + "\U0001f1e9\U0001f1ea" + "y" * 10,
     "x" * (SUBJECT_MAX - 3) + "\U0001f1e9\U0001f1ea" + "…"),
    ("x" * (SUBJECT_MAX - 4) + "\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7" + "y",   # 🇩🇪🇫🇷: only 🇫🇷 goes
     "x" * (SUBJECT_MAX - 4) + "\U0001f1e9\U0001f1ea" + "…"),
    ("x" * (SUBJECT_MAX - 4) + "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
     "x" * (SUBJECT_MAX - 4) + "…"),                                                 # 🏴 and its tags go together
])
def test_a_tickets_subject_is_shortened_on_a_character(subject, shown):
    assert shortened(subject) == shown and len(shown) <= SUBJECT_MAX


@settings(max_examples=200)
@given(ticket=st.integers(1, MAX_ID), subject=st.text(min_size=SUBJECT_MAX, max_size=600))
def test_a_shortened_subject_keeps_its_tag_in_a_reply(ticket, subject):
    tagged = "Re: " + tagged_subject(ticket, shortened(subject))
    assert ticket in find_tags(tagged) and len(shortened(subject)) <= SUBJECT_MAX


def _dedupe_key_as_first_written(raw: bytes) -> tuple[str, str | None]:
    """The key as ticketd first computed it, with whole copies: keys stored then must still collide.

    One change since, on purpose: lines before the first blank one that are
    no header (a mail without a header block) are hashed with the rest, or
    every such mail had the same key and the second was taken for the first.
    """
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    body_hash = hashlib.sha256(body.rstrip()).hexdigest()
    msg = email.message_from_bytes(head + b"\n\n")
    # Read as headers only: a multipart Content-Type would make the stray lines a preamble and the payload a list.
    stray = email.parser.BytesParser().parsebytes(head + b"\n\n", headersonly=True).get_payload()
    if stray.strip():
        body_hash = hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip()).hexdigest()
    message_id = (msgids(str(msg.get("message-id", "")))[:1] or [None])[0]
    if message_id:
        digest = hashlib.sha256(message_id.encode('utf-8', 'surrogateescape')).hexdigest()
        return f"mid:{digest[:40]}:{body_hash[:24]}", message_id
    kept = [f"{name.lower()}:{value}" for name, value in msg.items()
            if name.lower() not in _TRACE_HEADERS and not name.lower().startswith("x-")]
    head_hash = hashlib.sha256("\n".join(kept).encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha:{head_hash[:40]}:{body_hash[:24]}", None


_LINE_SOUP = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b" ", b"\t", b"a", b"Subject: x", b"Message-ID: <m@x>",
                                       b"Received: from y", b"\x0b", b"Content-Type: multipart/mixed; boundary=b",
                                       b"--b", b"--b--"]), max_size=40).map(b"".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_LINE_SOUP, _LINE_SOUP)
def test_dedupe_key_is_the_key_first_written(head, body):
    raw = head + b"\r\n\r\n" + body if body else head
    assert dedupe_key(raw)[0] == _dedupe_key_as_first_written(raw)[0]


_CORPUS_MAIL = sorted(p for p in CORPUS.rglob("*") if p.is_file() and (
    p.suffix in (".box", ".eml") or p.parent.parent.name == "bestpractical-rt" or p.parent.name == "bestpractical-rt"))


@pytest.mark.parametrize("path", _CORPUS_MAIL, ids=lambda p: str(p.relative_to(CORPUS)))
def test_dedupe_key_of_corpus_mail_is_the_key_first_written(path):
    raw = path.read_bytes()
    assert dedupe_key(raw)[0] == _dedupe_key_as_first_written(raw)[0]
    assert dedupe_key(raw)[1] in (None, parse_mail(raw).message_id)


def test_mails_without_a_header_block_are_told_apart_by_their_text():
    text, other = b"just a line of text without headers\r\n", b"another line, no headers either\r\n"
    assert dedupe_key(text) != dedupe_key(other)
    assert dedupe_key(text) == dedupe_key(text.replace(b"\r\n", b"\n"))   # the same mail by another route
    assert dedupe_key(b"Subject: x\r\nnot a header\r\n") != dedupe_key(b"Subject: x\r\nnor this\r\n")


def test_an_8bit_message_id_is_read_as_utf8_and_keeps_its_first_key():
    """RFC 6532: the log line and `quarantine list` show it as written; the key stays what it was."""
    raw = "Message-ID: <café-1@example.org>\r\nFrom: a@example.org\r\n\r\nhi\r\n".encode()
    assert dedupe_key(raw) == (_dedupe_key_as_first_written(raw)[0], "café-1@example.org")
    assert _dedupe_key_as_first_written(raw)[1] != "café-1@example.org"


@settings(max_examples=400)
@given(_LINE_SOUP, st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=4))
def test_body_hash_in_pieces_is_the_hash_of_the_whole(raw, start, chunk):
    start = min(start, len(raw))
    whole = hashlib.sha256(raw[start:].replace(b"\r\n", b"\n").rstrip()).hexdigest()
    assert _normalised_body_hash(raw, start, chunk) == whole


def test_a_subject_of_long_blank_runs_is_tagged_in_linear_time():
    """Its own tag was looked for from every blank of a run: 100 kB of them took seconds."""
    started = time.perf_counter()
    assert tagged_subject(7, "a" + " " * 100_000 + "b").startswith("[#7] a")
    assert time.perf_counter() - started < 5
