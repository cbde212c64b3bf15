"""Files inside a winmail.dat ([MS-OXTNEF]) and inside a forwarded mail (RFC 2046 section 5.2.1) are listed."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import quopri
import smtplib
import struct
import time
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tnefparse import TNEF

from ingest.parse import MailTooComplex, parse_mail
from ingest.tnef import TnefError, tnef_contents
from tests import tnef_builder as tb
from tests.conftest import write_config
from tests.cli import cli_ok
from ticketd.pipeline import drain
from ticketd.store.files import attachment_path

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND"


def _winmail(**kw) -> bytes:
    files = [tb.File("QUARTE~1.PDF", PDF, long_name="Quarterly report 2024.pdf"), tb.File("SHOT.PNG", PNG)]
    return tb.tnef(kw.pop("files", files), **kw)


def _mail(text: str | None = "See the attached report.\n", *, attach=(), subject="Report", message_id="<t@x.example>"):
    """A mail with an optional text part and (data, maintype, subtype, filename) attachments."""
    msg = EmailMessage()
    msg["From"] = "Kunde <cust@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if text is not None:
        msg.set_content(text)
    for data, maintype, subtype, filename in attach:
        if isinstance(data, EmailMessage):
            msg.add_attachment(data)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def _tnef_mail(blob: bytes, text: str | None = "See the attached report.\n", **kw) -> EmailMessage:
    return _mail(text, attach=[(blob, "application", "ms-tnef", "winmail.dat")], **kw)


def _summary(parsed):
    return [(a.filename, a.content_type, len(a.data)) for a in parsed.attachments]


# ------------------------------------------------------------ the test builder writes what tnefparse reads


def test_the_builder_writes_tnef_that_tnefparse_reads():
    blob = _winmail(body="plain body", html="<p>html body</p>")
    assert blob[:4] == b"\x78\x9f\x3e\x22"
    parsed = TNEF(blob)
    assert all(obj.good_checksum for obj in parsed.objects)
    assert [(a.name, a.long_filename(), a.data) for a in parsed.attachments] == [
        ("QUARTE~1.PDF", "Quarterly report 2024.pdf", PDF), ("SHOT.PNG", "SHOT.PNG", PNG)]
    assert (parsed.body, parsed.htmlbody) == ("plain body", "<p>html body</p>")


# ------------------------------------------------------------ winmail.dat


def test_files_inside_winmail_dat_are_listed_after_it():
    blob = _winmail()
    parsed = parse_mail(_tnef_mail(blob).as_bytes())
    assert _summary(parsed) == [
        ("winmail.dat", "application/ms-tnef", len(blob)),
        # The long MAPI name when present, else the 8.3 title; the type guessed from the name.
        ("Quarterly report 2024.pdf", "application/pdf", len(PDF)),
        ("SHOT.PNG", "image/png", len(PNG)),
    ]
    pdf = parsed.attachments[1]
    assert pdf.data == PDF and pdf.sha256 == hashlib.sha256(PDF).hexdigest()
    assert not pdf.inline and pdf.content_id is None
    assert parsed.text == "See the attached report." and parsed.defects == []


def test_outlook_s_mime_tag_wins_over_the_name_and_names_are_sanitised():
    blob = _winmail(files=[tb.File("DATA.BIN", b"a,b\n", long_name="..\\..\\evil\u202egpj.csv", mime_tag="text/csv"),
                           tb.File("", b"no name at all")])
    parsed = parse_mail(_tnef_mail(blob).as_bytes())
    assert _summary(parsed)[1:] == [("evilgpj.csv", "text/csv", 4), ("file1.bin", "application/octet-stream", 14)]


def test_an_empty_file_inside_winmail_dat_is_kept_as_an_empty_mime_attachment_is():
    blob = _winmail(files=[tb.File("EMPTY.TXT", b"", long_name="empty.txt"), tb.File("SHOT.PNG", PNG)])
    parsed = parse_mail(_tnef_mail(blob).as_bytes())
    assert _summary(parsed)[1:] == [("empty.txt", "text/plain", 0), ("SHOT.PNG", "image/png", len(PNG))]


def test_a_winmail_dat_relabelled_octet_stream_is_still_read():
    msg = _mail(attach=[(_winmail(), "application", "octet-stream", "winmail.dat")])
    assert [a.filename for a in parse_mail(msg.as_bytes()).attachments] == [
        "winmail.dat", "Quarterly report 2024.pdf", "SHOT.PNG"]


def _single_part(blob: bytes) -> bytes:
    """Outlook's other shape: the whole mail is the winmail.dat, with no text part at all."""
    return (b"From: cust@example.org\r\nTo: support@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"winmail.dat\"\r\n\r\n" + base64.encodebytes(blob))


@pytest.mark.parametrize("raw", [
    lambda blob: _single_part(blob),
    lambda blob: _tnef_mail(blob, text=None).as_bytes(),
    lambda blob: _tnef_mail(blob, text="\n").as_bytes(),
], ids=["single part", "multipart without text", "empty text part"])
def test_a_mail_without_text_takes_the_plain_body_inside_winmail_dat(raw):
    parsed = parse_mail(raw(_winmail(body="Der Drucker druckt nicht.\r\nGruß", html="<p>ignored</p>")))
    assert parsed.text == "Der Drucker druckt nicht.\nGruß"
    assert parsed.html == "<p>ignored</p>"
    assert [a.filename for a in parsed.attachments] == ["winmail.dat", "Quarterly report 2024.pdf", "SHOT.PNG"]


def test_the_html_body_inside_winmail_dat_is_made_text_when_there_is_no_plain_one():
    parsed = parse_mail(_single_part(_winmail(html="<p>Der Drucker <b>druckt</b> nicht.</p>")))
    assert parsed.text == "Der Drucker druckt nicht."


def test_a_mail_s_own_text_wins_over_the_body_inside_winmail_dat():
    parsed = parse_mail(_tnef_mail(_winmail(body="from the winmail.dat")).as_bytes())
    assert parsed.text == "See the attached report."


def test_an_rtf_only_body_leaves_the_text_empty():
    # No plain or HTML body: Outlook's RTF is not read (winmail.dat keeps it).
    assert parse_mail(_single_part(_winmail())).text == ""


def test_the_files_of_an_attached_outlook_item_are_listed():
    inner = tb.tnef([tb.File("INVOICE.PDF", PDF, long_name="Invoice 42.pdf")])
    parsed = parse_mail(_tnef_mail(_winmail(embedded=[("Fwd: invoice", inner)])).as_bytes())
    assert [a.filename for a in parsed.attachments] == [
        "winmail.dat", "Quarterly report 2024.pdf", "SHOT.PNG", "Invoice 42.pdf"]


def _garbage_cases() -> dict[str, bytes]:
    good = _winmail()
    bad_checksum = bytearray(good)
    bad_checksum[-1] ^= 0xFF
    head = struct.pack("<IH", tb.SIGNATURE, 1)
    rend = tb.attribute(tb.LVL_ATTACHMENT, tb.ATT_ATTACH_REND_DATA, b"\x00" * 14)
    return {
        "not tnef": b"This is not a TNEF stream at all.\r\n" * 20,
        "cut short": good[:len(good) // 2],
        "cut after an attribute": good[:-5],
        "bad checksum": bytes(bad_checksum),
        # tnefparse would loop once per promised property or value: minutes for 54 bytes.
        "promises 4e9 properties": head + rend + tb.attribute(tb.LVL_ATTACHMENT, tb.ATT_ATTACHMENT,
                                                              struct.pack("<I", 0xFFFFFFFF)),
        "promises 4e9 values": head + rend + tb.attribute(tb.LVL_ATTACHMENT, tb.ATT_ATTACHMENT,
                                                          struct.pack("<IHHI", 1, 0x1002, 0x1234, 0xFFFFFFFF)),
        # tnefparse copies the rest of the stream per attribute: quadratic in tiny attributes.
        "a million tiny attributes": head + tb.attribute(tb.LVL_MESSAGE, 0x00069999, b"x") * 1_000_000,
    }


@pytest.mark.parametrize("name", list(_garbage_cases()))
def test_an_unreadable_winmail_dat_is_kept_whole_and_logged(name, caplog):
    blob = _garbage_cases()[name]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ingest.parse"):
        parsed = parse_mail(_tnef_mail(blob, message_id="<garbage@x.example>").as_bytes())
    assert time.monotonic() - started < 5
    assert _summary(parsed) == [("winmail.dat", "application/ms-tnef", len(blob))]
    assert parsed.attachments[0].data == blob
    assert parsed.text == "See the attached report." and "TnefError" in parsed.defects
    [record] = [r for r in caplog.records if r.name == "ingest.parse"]
    assert record.levelno == logging.WARNING and "garbage@x.example" in record.getMessage()


_SEEDS = [_winmail(body="b", html="<p>h</p>"),
          tb.tnef([tb.File("A.TXT", b"a" * 40, long_name="a.txt")],
                  embedded=[("item", tb.tnef([tb.File("B.TXT", b"b" * 40, long_name="b.txt")]))])]


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_SEEDS), edits=st.lists(st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=4)),
                                                    max_size=4), cut=st.integers(0, 2000))
def test_a_damaged_winmail_dat_never_raises_and_never_stalls(seed, edits, cut):
    # Counts and lengths overwritten with anything: tnefparse trusts them, the check before it must not.
    blob = bytearray(seed)
    for at, data in edits:
        at %= len(blob)
        blob[at:at + len(data)] = data
    blob = bytes(blob[:len(blob) - cut % 64])
    try:
        contents = tnef_contents(blob)
    except TnefError:
        return
    assert all(isinstance(f.data, bytes) for f in contents.files)


def test_tnef_contents_refuses_what_it_cannot_read_whole():
    with pytest.raises(TnefError):
        tnef_contents(_winmail()[:-5])
    assert [f.name for f in tnef_contents(_winmail()).files] == ["Quarterly report 2024.pdf", "SHOT.PNG"]


def test_files_inside_winmail_dat_count_against_the_part_limit():
    files = [tb.File(f"F{i}.TXT", b"x%d" % i) for i in range(5)]
    raw = _tnef_mail(tb.tnef(files)).as_bytes()  # multipart, text, winmail.dat: 3 parts, then 5 files
    assert len(parse_mail(raw, max_parts=8).attachments) == 6
    with pytest.raises(MailTooComplex, match="more than 7 MIME parts"):
        parse_mail(raw, max_parts=7)


def _nested_items(levels: int) -> bytes:
    blob = tb.tnef([tb.File("INNER.TXT", b"innermost", long_name="innermost.txt")])
    for level in range(levels):
        blob = tb.tnef([tb.File(f"L{level}.TXT", b"level %d" % level, long_name=f"level {level}.txt")],
                       embedded=[("item", blob)])
    return blob


def test_outlook_items_nested_deeper_than_the_limit_are_not_read():
    raw = _tnef_mail(_nested_items(4)).as_bytes()
    # multipart (depth 0), winmail.dat (depth 1): max_depth 5 leaves room for four items inside.
    assert [a.filename for a in parse_mail(raw, max_depth=5).attachments] == [
        "winmail.dat", "level 3.txt", "level 2.txt", "level 1.txt", "level 0.txt", "innermost.txt"]
    parsed = parse_mail(raw, max_depth=4)
    assert [a.filename for a in parsed.attachments] == ["winmail.dat"]
    assert "TnefError" in parsed.defects


def test_an_outlook_item_tnefparse_cannot_read_whole_is_left_inside(caplog):
    # tnefparse strips the trailing NULs of an item's stream: this one ends in its
    # checksum 0x0041, so its last attribute arrives cut and fails its checksum.
    item = tb.tnef([tb.File("A.TXT", b"a")])
    assert item.endswith(b"\x41\x00")
    with caplog.at_level(logging.WARNING, logger="ingest.parse"):
        parsed = parse_mail(_tnef_mail(_winmail(embedded=[("item", item)])).as_bytes())
    assert [a.filename for a in parsed.attachments] == ["winmail.dat", "Quarterly report 2024.pdf", "SHOT.PNG"]
    assert any("Outlook item was not read" in r.getMessage() for r in caplog.records if r.name == "ingest.parse")


# ------------------------------------------------------------ forwarded mail


def _forwarded(subject="Invoice overdue", attach=((PDF, "application", "pdf", "invoice.pdf"),)) -> EmailMessage:
    inner = _mail("Please pay.\n", attach=attach, subject=subject, message_id="<inner@y.example>")
    inner.replace_header("From", "Billing <billing@vendor.example>")
    return inner


def test_a_forwarded_mail_is_listed_and_so_are_its_files():
    parsed = parse_mail(_mail("FYI, see below.\n", attach=[(_forwarded(), None, None, None)]).as_bytes())
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("Invoice overdue.eml", "message/rfc822"), ("invoice.pdf", "application/pdf")]
    assert parsed.attachments[1].data == PDF
    assert parse_mail(parsed.attachments[0].data).attachments[0].data == PDF  # the .eml is the whole mail
    assert parsed.text == "FYI, see below."  # the forwarded body stays in its .eml


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_the_files_of_a_forwarded_mail_sent_encoded_are_listed(cte):
    # RFC 2046 section 5.2.1 forbids these encodings for message/rfc822; webmail uses them anyway.
    inner = _forwarded().as_bytes()
    encoded = base64.encodebytes(inner) if cte == "base64" else quopri.encodestring(inner)
    raw = (b"From: cust@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nFYI\r\n'
           b"--B\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n"
           + encoded + b"\r\n--B--\r\n")
    parsed = parse_mail(raw)
    assert [a.filename for a in parsed.attachments] == ["Invoice overdue.eml", "invoice.pdf"]
    assert parsed.attachments[1].data == PDF


def test_a_forward_of_a_forward_lists_the_files_once_not_each_eml_inside():
    fwd_fwd = _mail("see below\n", attach=[(_forwarded(), None, None, None)], subject="Fwd: Invoice overdue",
                    message_id="<middle@x.example>")
    parsed = parse_mail(_mail("FYI\n", attach=[(fwd_fwd, None, None, None)]).as_bytes())
    assert [a.filename for a in parsed.attachments] == ["Fwd Invoice overdue.eml", "invoice.pdf"]


def test_a_forwarded_mail_s_inline_image_stays_inline_but_answers_no_cid():
    image = _forwarded(attach=())
    image.add_related(PNG, maintype="image", subtype="png", cid="<logo@vendor.example>")
    parsed = parse_mail(_mail("FYI\n", attach=[(image, None, None, None)]).as_bytes())
    logo = parsed.attachments[-1]
    assert logo.data == PNG and logo.inline and logo.content_id is None


def test_a_winmail_dat_inside_a_forwarded_mail_is_read_but_its_body_is_not_the_text():
    inner = _tnef_mail(_winmail(body="inner body"), text=None, subject="Outlook mail", message_id="<o@y.example>")
    parsed = parse_mail(_mail(None, attach=[(inner, None, None, None)]).as_bytes())
    assert [a.filename for a in parsed.attachments] == [
        "Outlook mail.eml", "winmail.dat", "Quarterly report 2024.pdf", "SHOT.PNG"]
    assert parsed.text == ""


def _nested_forward(levels: int) -> bytes:
    """A mail forwarding a mail forwarding … `levels` deep, the innermost with a PDF, each sent base64."""
    mail = _forwarded().as_bytes()
    for level in range(levels):
        mail = (b"From: a@example.org\r\nSubject: level %d\r\nMIME-Version: 1.0\r\n" % level
                + b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n' % (level, level)
                + b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(mail) + b"\r\n--L%d--\r\n" % level)
    return mail


def test_forwards_nested_deeper_than_the_limit_are_refused_even_when_sent_encoded():
    # Encoded, each forward looks like one flat part until it is decoded: the decoded
    # structure must be held to the same depth limit as the rest of the mail.
    assert [a.filename for a in parse_mail(_nested_forward(3), max_depth=20).attachments] == [
        "level 1.eml", "invoice.pdf"]
    with pytest.raises(MailTooComplex, match="MIME nesting deeper than 6"):
        parse_mail(_nested_forward(3), max_depth=6)


# ------------------------------------------------------------ through the receiver and the CLI


def test_tickets_show_lists_the_files_inside_winmail_dat_and_forwarded_mail(receiver_app, tmp_path, db_url):
    app, receiver = receiver_app
    config = write_config(tmp_path, db_url)  # the same database and data_dir, for the CLI
    blob = _winmail(body="Body only in winmail.dat")
    sent = {
        "tnef": _tnef_mail(blob, text=None, subject="Outlook report", message_id="<tnef@x.example>"),
        "garbage": _tnef_mail(b"\x78\x9f\x3e\x22 cut", subject="Broken winmail", message_id="<bad@x.example>"),
        "forward": _mail("FYI\n", attach=[(_forwarded(), None, None, None)], subject="Forwarded vendor invoice",
                         message_id="<fwd@x.example>"),
    }
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        for msg in sent.values():
            client.send_message(msg)
    assert drain(app) == 3
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []

    tickets = {t["subject"]: t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json"))}

    def attachments(subject):
        shown = json.loads(cli_ok(config, "tickets", "show", str(tickets[subject]), "--json"))
        [message] = [m for m in shown["messages"] if m["direction"] == "in"]
        return message, message["attachments"]

    message, listed = attachments("Outlook report")
    assert message["text"] == "Body only in winmail.dat"
    assert [(a["filename"], a["size"], a["sha256"]) for a in listed] == [
        ("winmail.dat", len(blob), hashlib.sha256(blob).hexdigest()),
        ("Quarterly report 2024.pdf", len(PDF), hashlib.sha256(PDF).hexdigest()),
        ("SHOT.PNG", len(PNG), hashlib.sha256(PNG).hexdigest()),
    ]
    assert listed[1]["content_type"] == "application/pdf"
    assert attachment_path(app.settings.attachments_dir, listed[1]["sha256"]).read_bytes() == PDF
    assert attachment_path(app.settings.attachments_dir, listed[2]["sha256"]).read_bytes() == PNG

    _, listed = attachments("Broken winmail")
    assert [(a["filename"], a["size"]) for a in listed] == [("winmail.dat", len(b"\x78\x9f\x3e\x22 cut"))]

    _, listed = attachments("Forwarded vendor invoice")
    assert [(a["filename"], a["content_type"]) for a in listed] == [
        ("Invoice overdue.eml", "message/rfc822"), ("invoice.pdf", "application/pdf")]
    assert listed[1]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert attachment_path(app.settings.attachments_dir, listed[1]["sha256"]).read_bytes() == PDF
