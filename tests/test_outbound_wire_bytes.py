"""An outbox row's bytes: as_wire_bytes writes every mail exactly as the email generator does."""

from __future__ import annotations

import unicodedata
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from io import BytesIO

from hypothesis import given, settings
from hypothesis import strategies as st

from outbound import outbox
from outbound.attachments import Listed
from outbound.outbox import SMTP_COMPAT, _WireGenerator, as_wire_bytes, compose
from outbound.template_check import SAMPLES
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice

STDLIB_WIRE = compat32.clone(linesep="\r\n")
TICKET = dict(id=42, subject="Printer on fire", status="open", priority="normal", requester="cust@example.org",
              requester_name="Customer", assignee="alice@example.com", postponed_until=None, dev_due=None)
FILES = [Listed("Grüße.pdf", 10, "application/pdf", "a" * 64, True), Listed("b.png", 5, "image/png", "b" * 64, True),
         Listed("mail.eml", 7, "message/rfc822", "c" * 64, True)]

# Text as customers and agents write it: scripts, line ends of every kind, long words, encoded-word look-alikes.
WORDS = st.sampled_from(["Grüße", "привет", "你好", "¿qué?", "déjà", "=?utf-8?q?x?=", "a" * 90, "From me",
                         "line\r\nbreak", "lone\rCR", "lf\n", "\t", " ", "", ".", "-- ", "=", "=_b", "x" * 20])
TEXT = st.lists(WORDS, max_size=40).map(" ".join)


@given(st.one_of(TEXT, st.text(alphabet=st.characters(max_codepoint=0x7F)), st.text()))
def test_a_header_text_is_cleaned_as_character_by_character(value):
    kept = (" " if unicodedata.category(ch) in outbox._BREAKING else ch for ch in value
            if ch not in outbox._BIDI_CONTROLS)
    assert outbox._clean(value) == " ".join("".join(kept).split())


def _generator_bytes(msg: Message) -> bytes:
    """What as_wire_bytes gave before: the email generator with _WireGenerator's body lines."""
    out = BytesIO()
    _WireGenerator(out, mangle_from_=False, policy=SMTP_COMPAT).flatten(msg, unixfrom=False)
    return out.getvalue()


def _same_bytes(msg: Message) -> bytes:
    wire = as_wire_bytes(msg)   # first: the generator sets a boundary where one is missing
    assert wire == _generator_bytes(msg)
    assert wire == msg.as_bytes(policy=STDLIB_WIRE)
    return wire


def test_every_template_composed_is_written_as_the_generator_writes_it(make_app, sqlite_url):
    app = make_app(sqlite_url)

    @settings(max_examples=200, deadline=None)
    @given(template=st.sampled_from(sorted(SAMPLES)), subject=TEXT, name=TEXT, text=TEXT, files=st.integers(0, 3),
           references=st.lists(st.sampled_from(["a@example.org", "b" * 300 + "@x", "c d@x", "é@x"]), max_size=4))
    def check(template, subject, name, text, files, references):
        context = dict(SAMPLES[template], text=text, agent_name=name)
        notice = Notice(template, "cust@example.org", 42, from_name=name or None, in_reply_to="m@example.org",
                        context=context, agent_reply_to="alice@example.com" if template.startswith("agent/") else None)
        msg = compose(app, notice, dict(TICKET, subject=subject), references, "m1@example.com", utcnow(),
                      FILES[:files], recipient_name=name)
        assert outbox._plain_wire(msg, [])   # what compose builds never needs the generator
        wire = _same_bytes(msg)
        assert b"Message-ID: <m1@example.com>\r\n" in wire

    check()


def _mime_tree(draw, depth: int) -> Message:
    kind = draw(st.sampled_from(["text", "html", "file", "empty", "multipart", "nested"] if depth < 3 else
                                ["text", "file"]))
    if kind in ("text", "html"):
        body = draw(TEXT)
        part = MIMEText(body, "plain" if kind == "text" else "html",
                        draw(st.sampled_from(["utf-8", "us-ascii", "iso-8859-1"])) if body.isascii() else "utf-8")
    elif kind == "file":
        part = MIMEApplication(draw(st.binary(max_size=200)))
    elif kind == "empty":
        part = MIMEBase("application", "octet-stream")
        part.set_payload(draw(st.sampled_from(["", None])))
    elif kind == "nested":
        part = MIMEMessage(_mime_tree(draw, depth + 1))   # message/rfc822: left to the generator
    else:
        part = MIMEMultipart(draw(st.sampled_from(["mixed", "alternative", "signed", "related"])),
                             boundary=draw(st.sampled_from([None, "=_abc", "b'q"])))
        for _ in range(draw(st.integers(0, 3))):
            part.attach(_mime_tree(draw, depth + 1))
        part.preamble = draw(st.sampled_from([None, "", "preamble\nline", "ünï"]))
        part.epilogue = draw(st.sampled_from([None, "", "epilogue\r\n", "end"]))
    for header in draw(st.lists(st.sampled_from(["Subject", "X-Note", "Content-Description"]), max_size=2)):
        part[header] = draw(TEXT)
    return part


def _alike(msg: Message) -> None:
    """as_wire_bytes writes the generator's bytes, or raises what the generator raises."""
    try:
        expected = msg.as_bytes(policy=STDLIB_WIRE)
    except Exception as exc:   # a tree the generator refuses (a non-ASCII body without a charset) is refused alike
        try:
            as_wire_bytes(msg)
        except Exception as again:
            assert type(again) is type(exc)
            return
        raise AssertionError(f"written, where the generator raised {exc!r}") from exc
    assert as_wire_bytes(msg) == expected == _generator_bytes(msg)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mime_tree_is_written_as_the_generator_writes_it(data):
    _alike(_mime_tree(data.draw, 0))


def test_what_compose_builds_takes_the_quick_path_and_the_rest_the_generator():
    notice = MIMEMultipart("alternative", boundary="=_x")
    notice.attach(outbox._text_part("Grüße\n", "plain"))
    notice.attach(outbox._text_part("<p>Grüße</p>", "html"))
    assert outbox._plain_wire(notice, [])
    forwarded = MIMEMultipart("mixed", boundary="=_y")
    forwarded.attach(MIMEMessage(MIMEText("inner")))
    unbounded = MIMEMultipart("mixed")
    unbounded.attach(MIMEText("x"))
    non_ascii = MIMEBase("text", "plain")
    non_ascii.set_payload("Grüße")
    for other in (forwarded, unbounded, non_ascii):
        assert not outbox._plain_wire(other, [])
        _alike(other)
