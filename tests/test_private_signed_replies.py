"""An agent's signed reply reaches the customer without what signs it (PRODUCT.md: customers never see
agents' private addresses).

Thunderbird, Outlook and Apple Mail sign a reply as multipart/signed (RFC 8551 section 3.5.3, RFC 3156
section 5): the text, then a detached signature, smime.p7s carrying the agent's certificate and so their
own address, or an OpenPGP signature, with Thunderbird's "attach my public key" the key and its user ID
beside it. Relayed, these went to the customer as files of the reply; a signed reply with nothing typed
went out as the signature alone.
"""

from __future__ import annotations

import email.policy
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from asn1crypto import cms, x509

from tests.desk import body_text, open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
PRIVATE = "alice.smith@home.example.net"   # the address on her certificate and key, in no rules.yaml
PGP_KEY = (f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEZ-Alice Smith <{PRIVATE}>-\n"
           "-----END PGP PUBLIC KEY BLOCK-----\n").encode()
PGP_SIGNATURE = b"-----BEGIN PGP SIGNATURE-----\n\nwnUEARYKAB0WIQ\n-----END PGP SIGNATURE-----\n"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _certificate(address: str) -> x509.Certificate:
    """A certificate naming `address` as a mail client's S/MIME certificate does (its bytes, unsigned)."""
    name = x509.Name.build({"common_name": "Alice Smith", "email_address": address})
    return x509.Certificate({
        "tbs_certificate": {
            "version": "v3", "serial_number": 1,
            "signature": {"algorithm": "sha256_rsa"}, "issuer": name, "subject": name,
            "validity": {"not_before": x509.Time({"utc_time": "300101000000Z"}),
                         "not_after": x509.Time({"utc_time": "310101000000Z"})},
            "subject_public_key_info": {"algorithm": {"algorithm": "rsa"},
                                        "public_key": {"modulus": 3233, "public_exponent": 17}},
            "extensions": [{"extn_id": "subject_alt_name",
                            "extn_value": [x509.GeneralName({"rfc822_name": address})]}],
        },
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature_value": b"\x00" * 16,
    })


def _p7s(address: str) -> bytes:
    """A detached S/MIME signature carrying the signer's certificate, as every signing client sends it."""
    return cms.ContentInfo({"content_type": "signed_data", "content": {
        "version": "v1", "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "data"},
        "certificates": [_certificate(address)], "signer_infos": []}}).dump()


def _part(data: bytes, media_type: str, filename: str) -> MIMEApplication:
    part = MIMEApplication(data, media_type.split("/", 1)[1], name=filename)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _smime(text: str) -> list:
    return [MIMEText(text, "plain", "utf-8"), _part(_p7s(PRIVATE), "application/pkcs7-signature", "smime.p7s")]


def _openpgp(text: str) -> list:
    """Thunderbird's signed mail: the text and its public key signed together, the signature beside them."""
    content = MIMEMultipart("mixed", _subparts=[MIMEText(text, "plain", "utf-8"),
                                                _part(PGP_KEY, "application/pgp-keys", "OpenPGP_0x1A2B3C4D.asc")])
    return [content, _part(PGP_SIGNATURE, "application/pgp-signature", "OpenPGP_signature.asc")]


def _signed_reply(desk, received, sender: str, parts: list, protocol: str):
    msg = MIMEMultipart("signed", protocol=protocol, micalg="sha-256", _subparts=parts)
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = str(received["Reply-To"])
    msg["Subject"] = "Re: " + str(received["Subject"])
    msg["Message-ID"] = f"<signed.{id(msg)}@mail.example.com>"
    msg["In-Reply-To"] = msg["References"] = str(received["Message-ID"])
    return desk.send(email.message_from_bytes(msg.as_bytes(), policy=email.policy.default))


def _files(mail) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments()}


SIGNED = [(_smime, "application/pkcs7-signature"), (_openpgp, "application/pgp-signature")]


@pytest.mark.parametrize("wrap,protocol", SIGNED, ids=["smime", "openpgp"])
def test_a_signed_reply_reaches_the_customer_without_its_signature(desk, wrap, protocol):
    desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    before = len(desk.inbox(CUSTOMER))
    _signed_reply(desk, desk.last(ALICE), ALICE, wrap("Please unplug it and wait a minute.\n"), protocol)
    [relayed] = desk.inbox(CUSTOMER)[before:]
    assert "Please unplug it and wait a minute." in body_text(relayed)
    assert _files(relayed) == {}
    assert PRIVATE.encode() not in relayed.as_bytes() and PRIVATE not in relayed.as_string()


@pytest.mark.parametrize("wrap,protocol", SIGNED, ids=["smime", "openpgp"])
def test_a_signed_reply_with_nothing_typed_is_refused_not_sent_as_its_signature(desk, wrap, protocol):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    before = len(desk.inbox(CUSTOMER))
    _signed_reply(desk, desk.last(ALICE), ALICE, wrap(""), protocol)
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.ticket(tid)["status"] == "new" and desk.events(tid, "commands_rejected")
    assert "nothing was sent to the customer" in body_text(desk.last(ALICE))


def test_a_file_in_a_signed_reply_still_reaches_the_customer(desk):
    desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    before = len(desk.inbox(CUSTOMER))
    text = MIMEMultipart("mixed", _subparts=[MIMEText("The manual.\n", "plain", "utf-8"),
                                             _part(PDF, "application/pdf", "manual.pdf")])
    _signed_reply(desk, desk.last(ALICE), ALICE,
                  [text, _part(_p7s(PRIVATE), "application/pkcs7-signature", "smime.p7s")],
                  "application/pkcs7-signature")
    [relayed] = desk.inbox(CUSTOMER)[before:]
    assert _files(relayed) == {"manual.pdf": PDF}
