"""The SMTP client against a smarthost that wants STARTTLS (verified certificates) and AUTH."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from outbound.send import FAILED, RETRY, SENT, send_raw
from tests.conftest import free_port
from tests.sink import Sink, customer_mail
from ticketd.settings import OutboundSettings


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_sink(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink(free_port(), tls_context=context, credentials=("ticketd", "s3cret")).start()
    yield sink
    sink.stop()


def _settings(sink, **kw) -> OutboundSettings:
    values = dict(host="127.0.0.1", port=sink.port, starttls=True, username="ticketd", password="s3cret",
                  timeout_seconds=5)
    values.update(kw)
    return OutboundSettings(**values)


RAW = customer_mail(sender="support@example.com").as_bytes()


def test_starttls_with_a_trusted_certificate_and_auth_delivers(tls_sink, certificate, monkeypatch):
    # Trust our test CA the way an admin would: the standard OpenSSL variable.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    result = send_raw(_settings(tls_sink), "support@example.com", "cust@example.org", RAW)
    assert result.outcome == SENT, result.reply
    assert tls_sink.logins == ["ticketd"] and len(tls_sink.messages) == 1


def test_an_untrusted_certificate_is_refused_and_retried_later(tls_sink):
    result = send_raw(_settings(tls_sink), "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and "CERTIFICATE_VERIFY_FAILED" in result.reply
    assert tls_sink.messages == []


def test_verification_can_be_switched_off(tls_sink):
    result = send_raw(_settings(tls_sink, verify_certificates=False), "support@example.com", "c@example.org", RAW)
    assert result.outcome == SENT and len(tls_sink.messages) == 1


def test_a_wrong_password_waits_for_the_admins_fix(tls_sink):
    # 535 says nothing about the mail: failing it for good would lose every
    # mail queued until the password is fixed.
    result = send_raw(_settings(tls_sink, verify_certificates=False, password="wrong"),
                      "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and result.reply.startswith("535")
    result = send_raw(_settings(tls_sink, verify_certificates=False), "support@example.com", "cust@example.org", RAW)
    assert result.outcome == SENT and len(tls_sink.messages) == 1


def test_a_refused_sender_waits_for_the_admins_fix_and_a_refused_recipient_fails(tls_sink):
    settings = _settings(tls_sink, verify_certificates=False)
    tls_sink.refuse_sender = "553 5.7.1 support@example.com: sender not owned by user ticketd"
    result = send_raw(settings, "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and result.reply.startswith("553 5.7.1")
    tls_sink.refuse_sender = None
    tls_sink.reject = {"gone@example.org"}
    assert send_raw(settings, "support@example.com", "gone@example.org", RAW).outcome == FAILED
    assert send_raw(settings, "support@example.com", "cust@example.org", RAW).outcome == SENT


def test_without_starttls_the_sink_refuses_and_nothing_is_sent(tls_sink):
    result = send_raw(_settings(tls_sink, starttls=False, username=None), "support@example.com", "c@example.org", RAW)
    assert result.outcome != SENT and tls_sink.messages == []


@pytest.fixture
def implicit_tls_sink(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink(free_port(), implicit_tls_context=context).start()
    yield sink
    sink.stop()


def test_implicit_tls_with_a_trusted_certificate_delivers(implicit_tls_sink, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    settings = OutboundSettings(host="127.0.0.1", port=implicit_tls_sink.port, ssl=True, timeout_seconds=5)
    result = send_raw(settings, "support@example.com", "cust@example.org", RAW)
    assert result.outcome == SENT, result.reply
    assert len(implicit_tls_sink.messages) == 1


def test_implicit_tls_refuses_an_untrusted_certificate_and_retries_later(implicit_tls_sink):
    settings = OutboundSettings(host="127.0.0.1", port=implicit_tls_sink.port, ssl=True, timeout_seconds=5)
    result = send_raw(settings, "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and "CERTIFICATE_VERIFY_FAILED" in result.reply
    assert implicit_tls_sink.messages == []


def test_refused_connection_is_a_retry():
    result = send_raw(OutboundSettings(host="127.0.0.1", port=free_port(), timeout_seconds=2),
                      "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and "Refused" in result.reply


def test_a_delivery_thread_keeps_its_connection_and_logs_in_once(tls_sink):
    settings = _settings(tls_sink, verify_certificates=False)
    for n in range(3):
        assert send_raw(settings, "support@example.com", f"c{n}@example.org", RAW).outcome == SENT
    assert len(tls_sink.messages) == 3
    assert len({m.peer for m in tls_sink.messages}) == 1      # one SMTP connection
    assert tls_sink.logins == ["ticketd"]


def test_a_kept_connection_the_server_dropped_is_replaced_before_the_mail_is_sent():
    sink = Sink(free_port()).start()
    settings = OutboundSettings(host="127.0.0.1", port=sink.port, timeout_seconds=5)
    try:
        assert send_raw(settings, "support@example.com", "a@example.org", RAW).outcome == SENT
        sink.stop()
        sink.start()   # the kept connection is gone with the old server
        assert send_raw(settings, "support@example.com", "b@example.org", RAW).outcome == SENT
        assert [m.rcpt_tos for m in sink.messages] == [["a@example.org"], ["b@example.org"]]
        assert sink.messages[0].peer != sink.messages[1].peer
    finally:
        sink.stop()


def test_after_a_refusal_the_next_mails_go_through_and_share_a_connection():
    sink = Sink(free_port()).start()
    settings = OutboundSettings(host="127.0.0.1", port=sink.port, timeout_seconds=5)
    try:
        sink.fail_next(1)
        assert send_raw(settings, "support@example.com", "a@example.org", RAW).outcome == RETRY
        assert send_raw(settings, "support@example.com", "a@example.org", RAW).outcome == SENT
        assert send_raw(settings, "support@example.com", "b@example.org", RAW).outcome == SENT
        first, second = sink.messages
        assert first.peer == second.peer   # kept after the success
    finally:
        sink.stop()


def test_an_internationalised_domain_is_sent_in_its_ascii_form(tls_sink):
    from ingest.headers import ascii_domain

    assert ascii_domain("kunde@bücher.example") == "kunde@xn--bcher-kva.example"
    assert ascii_domain("cust@example.org") == "cust@example.org"
    # IDNA 2008 (UTS #46): ß stays ß; IDNA 2003 made it ss and mailed fass.de, another domain.
    assert ascii_domain("kunde@Faß.de") == "kunde@xn--fa-hia.de"
    assert ascii_domain("kunde@σίσυφος.example") == "kunde@xn--kxa6ajbbmh.example"   # its final sigma kept
    assert ascii_domain("fan@☃.net") == "fan@xn--n3h.net"   # refused by IDNA 2008, written by 2003
    result = send_raw(_settings(tls_sink, verify_certificates=False), "support@example.com",
                      "kunde@bücher.example", RAW)
    assert result.outcome == SENT, result.reply
    assert tls_sink.messages[0].rcpt_tos == ["kunde@xn--bcher-kva.example"]
