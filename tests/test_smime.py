"""An opaquely signed S/MIME mail is read as the mail it signs (RFC 8551 section 3.5.2); an encrypted one says so.

tests/fixtures/smime_opaque_signed.eml was made with `openssl smime -sign
-nodetach -binary -outform SMIME` from a multipart/mixed entity (a UTF-8
quoted-printable answer and orders.csv), with a self-signed test certificate;
smime_encrypted.eml with `openssl smime -encrypt -outform SMIME` from the same
entity. Headers were written above the wrapper by hand.
"""

from __future__ import annotations

import base64
import email
import email.utils
import hashlib
import json
import smtplib
from pathlib import Path

import pytest
from asn1crypto import cms

from ingest.parse import parse_mail
from tests.cli import cli_ok
from tests.conftest import write_config
from tests.desk import body_text, build_mail, open_desk
from tests.received import as_sent
from ticketd.pipeline import drain
from ticketd.store.tables import attachments, raw_mail, tickets

FIXTURES = Path(__file__).parent / "fixtures"
SIGNED = (FIXTURES / "smime_opaque_signed.eml").read_bytes()
ENCRYPTED = (FIXTURES / "smime_encrypted.eml").read_bytes()
DER = email.message_from_bytes(SIGNED).get_payload(decode=True)
ENCRYPTED_DER = email.message_from_bytes(ENCRYPTED).get_payload(decode=True)
ANSWER = "Yes, that solved it – thank you!"
CSV = b"Order,Item,Quantity\r\n1042,Drucker-Toner,2\r\n1043,Papier A4,10\r\n"
SIGNED_DATA = 'application/x-pkcs7-mime; smime-type=signed-data; name="smime.p7m"'
CUSTOMER, ALICE = "juergen@example.org", "alice@example.com"


def _p7m(der: bytes, content_type: str = SIGNED_DATA, filename: str = "smime.p7m", **headers: str) -> bytes:
    """A mail that is one S/MIME entity, as Outlook sends it, with the given headers above it."""
    head = {"From": f"Jürgen Müller <{CUSTOMER}>", "To": "support@example.com", "Subject": "Printer on fire",
            "Message-ID": f"<{hashlib.sha256(der).hexdigest()[:16]}@mail.example.org>", **headers}
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in head.items()] + [
        "MIME-Version: 1.0", f'Content-Disposition: attachment; filename="{filename}"',
        f"Content-Type: {content_type}", "Content-Transfer-Encoding: base64", "", ""]
    return "\r\n".join(lines).encode() + base64.encodebytes(der).replace(b"\n", b"\r\n")


def _signed_data(content: bytes | None) -> bytes:
    """A SignedData holding `content` (None: detached), signed by nobody: ticketd reads no signature."""
    encap = {"content_type": "data"} if content is None else {"content_type": "data", "content": content}
    return cms.ContentInfo({"content_type": "signed_data", "content": {
        "version": "v1", "digest_algorithms": [], "encap_content_info": encap, "signer_infos": []}}).dump()


def _wrapped(der: bytes) -> bytes:
    """The MIME entity of a mail signed opaquely once more, as a gateway signing over the client's signature."""
    entity = (f"Content-Type: {SIGNED_DATA}\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode()
    return _signed_data(entity + base64.encodebytes(der))


def _detached(der: bytes) -> bytes:
    info = cms.ContentInfo.load(der)
    info["content"]["encap_content_info"] = {"content_type": "data"}
    return info.dump(force=True)


def _summary(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    parsed = parse_mail(raw)
    return parsed.text.split("\n", 1)[0], [(a.filename, a.sha256) for a in parsed.attachments]


SHA_CSV = hashlib.sha256(CSV).hexdigest()
READ = (ANSWER, [("orders.csv", SHA_CSV)])


def _kept(der: bytes, text: str = "") -> tuple[str, list[tuple[str, str]]]:
    return text, [("smime.p7m", hashlib.sha256(der).hexdigest())]


def test_the_fixture_is_what_openssl_signed():
    parsed = parse_mail(SIGNED)
    assert parsed.text.startswith(ANSWER + "\n\nThe toner order for Jürgen is attached")
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [("orders.csv", "text/csv", CSV)]
    assert (parsed.from_addr, parsed.from_name, parsed.subject) == (CUSTOMER, "Jürgen Müller", "Re: Printer on fire")
    assert parsed.message_id == "0a1b2c3d4e5f@mail.example.org"
    assert parsed.content_type == "multipart/mixed"


def test_only_a_signed_mail_that_holds_its_content_is_opened_the_rest_keeps_its_p7m():
    """Anything else keeps what ticketd stored before: the smime.p7m as a file, never an error."""
    three_layers = _wrapped(_wrapped(DER))
    cases = {
        "x-pkcs7-mime": (_p7m(DER), READ),
        "pkcs7-mime": (_p7m(DER, 'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"'), READ),
        "no smime-type": (_p7m(DER, "application/pkcs7-mime"), READ),
        # RFC 8551 section 3.2.2: some agents send it as application/octet-stream, named .p7m.
        "octet-stream": (_p7m(DER, 'application/octet-stream; name="smime.p7m"'), READ),
        "a gateway's signature over the client's": (_p7m(_wrapped(DER)), READ),
        "three layers": (_p7m(three_layers), _kept(three_layers)),
        "detached": (_p7m(_detached(DER)), _kept(_detached(DER))),
        "cut short": (_p7m(DER[:1000]), _kept(DER[:1000])),
        "not DER": (_p7m(b"not a CMS structure at all"), _kept(b"not a CMS structure at all")),
        "an empty content": (_p7m(_signed_data(b"")), _kept(_signed_data(b""))),
        "certs-only": (_p7m(DER, 'application/pkcs7-mime; smime-type=certs-only; name="smime.p7c"',
                            filename="smime.p7c"), ("", [("smime.p7c", hashlib.sha256(DER).hexdigest())])),
        "octet-stream not named .p7m": (_p7m(DER, "application/octet-stream", filename="data.bin"),
                                        ("", [("data.bin", hashlib.sha256(DER).hexdigest())])),
    }
    assert {name: _summary(raw) for name, (raw, _) in cases.items()} == {
        name: expected for name, (_, expected) in cases.items()}


def test_the_outer_headers_are_the_mail_s_and_headers_inside_add_no_second_author():
    inner = (b"From: someone.else@example.net\r\nSubject: Inside\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n" + ANSWER.encode() + b"\r\n")
    parsed = parse_mail(_p7m(_signed_data(inner), Subject="Outside"))
    assert (parsed.text, parsed.subject, parsed.from_addr, parsed.from_count) == (ANSWER, "Outside", CUSTOMER, 1)
    assert parsed.attachments == []
    # An entity with no header at all is text/plain (RFC 2045 section 5.2), its first line no header.
    parsed = parse_mail(_p7m(_signed_data(b"\r\n" + ANSWER.encode() + b"\r\n")))
    assert parsed.text == ANSWER and parsed.from_addr == CUSTOMER


def test_an_encrypted_mail_says_it_could_not_be_read_and_keeps_its_p7m():
    parsed = parse_mail(ENCRYPTED)
    assert parsed.text == ("[encrypted with S/MIME, which ticketd cannot read: the mail is kept as it came, "
                           "in smime.p7m]")
    assert [(a.filename, a.data) for a in parsed.attachments] == [("smime.p7m", ENCRYPTED_DER)]
    # Known by its CMS type when the smime-type parameter is missing; a signed mail holding it says the same.
    assert parse_mail(_p7m(ENCRYPTED_DER, "application/pkcs7-mime")).text == parsed.text
    inner = ("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n").encode() + base64.encodebytes(ENCRYPTED_DER)
    assert parse_mail(_p7m(_signed_data(inner))).text == parsed.text


# ------------------------------------------------------------ through the receiver and the CLI


def test_tickets_show_has_the_words_and_files_of_an_opaquely_signed_mail(receiver_app, tmp_path, db_url):
    app, receiver = receiver_app
    config = write_config(tmp_path, db_url)  # the same database and data_dir, for the CLI
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        assert client.sendmail(CUSTOMER, ["support@example.com"], SIGNED) == {}
        assert client.sendmail(CUSTOMER, ["support@example.com"], ENCRYPTED) == {}
    assert drain(app) == 2
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    [signed, encrypted] = sorted(json.loads(cli_ok(config, "tickets", "list", "--json")), key=lambda t: t["id"])
    assert signed["requester"] == CUSTOMER

    def message(ticket):
        shown = json.loads(cli_ok(config, "tickets", "show", str(ticket["id"]), "--json"))
        [message] = [m for m in shown["messages"] if m["direction"] == "in"]
        return message

    shown = message(signed)
    assert shown["text"].startswith(f"{ANSWER}\n\nThe toner order for Jürgen is attached as a spreadsheet.")
    assert [(a["filename"], a["content_type"], a["size"], a["sha256"]) for a in shown["attachments"]] == [
        ("orders.csv", "text/csv", len(CSV), SHA_CSV)]
    shown = message(encrypted)
    assert shown["text"].startswith("[encrypted with S/MIME, which ticketd cannot read")
    assert [(a["filename"], a["sha256"]) for a in shown["attachments"]] == [
        ("smime.p7m", hashlib.sha256(ENCRYPTED_DER).hexdigest())]
    # The mail itself is kept as it came, signature and all.
    with app.engine.connect() as conn:
        kept = [as_sent(bytes(r)) for r in conn.execute(raw_mail.select().with_only_columns(raw_mail.c.raw)
                                               .order_by(raw_mail.c.id)).scalars()]
    assert [k.replace(b"\r\n", b"\n").rstrip() for k in kept] == [m.replace(b"\r\n", b"\n").rstrip()
                                                                  for m in (SIGNED, ENCRYPTED)]


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def test_a_signed_answer_to_a_proposed_solution_threads_and_accepts_it(desk):
    desk.send(build_mail(CUSTOMER, "The printer shows error 41.\n", subject="Printer on fire"))
    ticket = desk.ticket()
    assert desk.assign(ticket["id"]) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nHold the power button for ten seconds.\n")
    proposal = desk.last(CUSTOMER)
    assert "ten seconds" in body_text(proposal)

    answer = _p7m(DER, From=f"Jürgen Müller <{CUSTOMER}>", To=str(proposal["Reply-To"]),
                  Subject="Re: " + str(proposal["Subject"]), In_Reply_To=str(proposal["Message-ID"]),
                  References=str(proposal["Message-ID"]))
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        assert client.sendmail(CUSTOMER, [email.utils.parseaddr(str(proposal["Reply-To"]))[1]], answer) == {}
    assert drain(desk.app) == 1
    desk.flush()

    assert len(desk.rows(tickets)) == 1
    assert desk.ticket(ticket["id"])["status"] == "closed"
    assert desk.events(ticket["id"], "accepted")
    reply = desk.messages(ticket["id"])[-1]
    assert reply["matched_by"] == "reply_address"
    # Its own words, without the proposal it quotes; the acceptance is read from its first line.
    assert reply["text"] == f"{ANSWER}\n\nThe toner order for Jürgen is attached as a spreadsheet."
    assert "Hold the power button" in reply["full_text"]
    [file] = desk.rows(attachments, message_id=reply["id"])
    assert (file["filename"], file["sha256"]) == ("orders.csv", SHA_CSV)
