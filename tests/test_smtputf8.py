"""Customers with internationalised addresses (RFC 6530-6532): in through our receiver, out through a smarthost.

A real smtplib client talks to the real receiver; acknowledgements go to an
aiosmtpd sink that does or does not offer SMTPUTF8 (RFC 6531), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import smtplib
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.conftest import free_port
from tests.received import as_sent
from tests.sink import Sink, _Handler, outbox_rows, running, ticket_events, wait_until
from ticketd.pipeline import drain
from ticketd.store.tables import raw_mail, tickets

# No agents: the acknowledgement is the only mail, so the sink sees only it.
NO_AGENTS = "agents: []\nroutes: []\n"


class _EnvelopeHandler(_Handler):
    """The test sink's handler, also keeping each accepted mail's MAIL FROM parameters."""

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.sink.mail_options.append(list(envelope.mail_options))
        return reply


class Utf8Sink(Sink):
    """A smarthost that offers SMTPUTF8 or not, and records the MAIL FROM parameters of what it took."""

    def __init__(self, port: int, *, smtputf8: bool) -> None:
        super().__init__(port)
        self.smtputf8 = smtputf8
        self.mail_options: list[list[str]] = []

    def start(self) -> "Utf8Sink":
        self._controller = Controller(_EnvelopeHandler(self), hostname=self.host, port=self.port,
                                      enable_SMTPUTF8=self.smtputf8)
        self._controller.start()
        return self

    def options_for(self, recipient: str) -> list[str]:
        """The MAIL FROM parameters of the mail that went to `recipient`."""
        [index] = [i for i, m in enumerate(self.messages) if m.rcpt_tos == [recipient]]
        return self.mail_options[index]


@pytest.fixture
def utf8_sink():
    sink = Utf8Sink(free_port(), smtputf8=True).start()
    yield sink
    sink.stop()


@pytest.fixture
def ascii_sink():
    sink = Utf8Sink(free_port(), smtputf8=False).start()
    yield sink
    sink.stop()


def _app(make_app, db_url, sink, smtp: str = ""):
    outbound = (f"outbound: {{host: 127.0.0.1, port: {sink.port}, retry_base_seconds: 0.05, "
                f"timeout_seconds: 2}}\n")
    return make_app(db_url, outbound_port=sink.port, rules=NO_AGENTS, extra=outbound + smtp)


def _mail(sender: str, name: str, subject: str, to: str = "support@example.com") -> bytes:
    """A mail with raw UTF-8 header fields (RFC 6532 section 3.2), no encoded words."""
    return (f"From: {name} <{sender}>\r\n"
            f"To: {to}\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@client.example.de>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "Der Drucker brennt.\r\n").encode("utf-8")


def _send(port: int, sender: str, raw: bytes, to: str = "support@example.com") -> None:
    """Send as an SMTPUTF8 client does: `MAIL FROM:<...> SMTPUTF8`, then the bytes as they are."""
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        assert client.sendmail(sender, [to], raw, mail_options=["SMTPUTF8"]) == {}


def _tickets(app) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tickets).order_by(tickets.c.id)).mappings()]


def _row_to(app, recipient: str) -> dict:
    return wait_until(lambda: [r for r in outbox_rows(app) if r["recipient"] == recipient
                               and r["state"] in ("sent", "failed")])[0]


# ---------------------------------------------------------------- in


def test_a_utf8_mail_is_stored_byte_for_byte_and_becomes_a_ticket(receiver_app):
    app, receiver = receiver_app
    raw = _mail("Müller@example.de", "Bernd Müller", "Grüße aus München: 打印机着火了")
    _send(receiver.port, "Müller@example.de", raw)
    with app.engine.connect() as conn:
        stored = conn.execute(select(raw_mail)).mappings().one()
    assert as_sent(bytes(stored["raw"])) == raw
    assert stored["envelope_from"] == "Müller@example.de"
    assert drain(app) == 1
    [ticket] = _tickets(app)
    # Lower-cased like every ASCII address ticketd keeps, though RFC 6531
    # leaves a local part's case to its owner.
    assert ticket["requester"] == "müller@example.de"
    assert ticket["requester_name"] == "Bernd Müller"
    assert ticket["subject"] == "Grüße aus München: 打印机着火了"


def test_utf8_recipients_are_checked_like_ascii_ones(receiver_app):
    _, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        assert client.mail("用户@例子.广告", ["SMTPUTF8"])[0] == 250
        code, text = client.rcpt("支持@example.com")
        assert (code, text.decode("utf-8")) == (550, "5.1.1 <支持@example.com>: no such mailbox here")
        assert client.rcpt("support@example.com")[0] == 250
        assert client.rcpt("SUPPORT@Example.COM")[0] == 250


def test_bytes_that_are_not_utf8_in_an_address_are_refused_for_good(receiver_app):
    # A 4xx would bring them back for days; they cannot name a mailbox (RFC 6531 section 3.3).
    _, receiver = receiver_app
    with smtplib.SMTP("127.0.0.1", receiver.port) as client:
        client.ehlo()
        client.send(b"MAIL FROM:<m\xfcller@example.de> SMTPUTF8\r\n")
        assert client.getreply()[0] == 553
        assert client.mail("cust@example.org", ["SMTPUTF8"])[0] == 250
        client.send(b"RCPT TO:<supp\xf6rt@example.com>\r\n")
        assert client.getreply()[0] == 553
        assert client.rcpt("support@example.com")[0] == 250   # the session goes on


def test_a_utf8_support_alias_takes_mail_in_either_form_of_its_domain(make_app, sqlite_url):
    app = make_app(sqlite_url, extra=f"smtp:\n  listen: 127.0.0.1:{free_port()}\n"
                                     "  extra_addresses: [hjälp@bücher.example]\n")
    with running(app):
        port = app.settings.smtp.host_port[1]
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo()
            client.mail("cust@example.org", ["SMTPUTF8"])
            assert client.rcpt("HJÄLP@xn--bcher-kva.example")[0] == 250   # A-labels (RFC 5890)
            assert client.rcpt("nej@bücher.example")[0] == 550
        _send(port, "cust@example.org", _mail("cust@example.org", "Kunde", "Hallo", to="hjälp@bücher.example"),
              to="hjälp@bücher.example")
        [ticket] = wait_until(lambda: _tickets(app))
    assert ticket["requester"] == "cust@example.org"


# ---------------------------------------------------------------- out


def test_the_acknowledgement_goes_out_with_smtputf8(make_app, db_url, utf8_sink):
    app = _app(make_app, db_url, utf8_sink)
    with running(app):
        _send(app.settings.smtp.host_port[1], "müller@example.de",
              _mail("müller@example.de", "Bernd Müller", "Grüße"))
        [ack] = wait_until(lambda: utf8_sink.messages)
    assert ack.rcpt_tos == ["müller@example.de"]
    assert "SMTPUTF8" in utf8_sink.options_for("müller@example.de")
    assert _row_to(app, "müller@example.de")["state"] == "sent"
    [ticket] = _tickets(app)
    assert ack.message["Subject"] == f"[#{ticket['id']}] Grüße"


def test_the_to_header_is_the_utf8_address_itself(make_app, sqlite_url, utf8_sink):
    # An address is never an encoded word (RFC 2047 section 5 (3)); in an
    # SMTPUTF8 mail it is raw UTF-8 (RFC 6532 section 3.2).
    app = _app(make_app, sqlite_url, utf8_sink)
    with running(app):
        _send(app.settings.smtp.host_port[1], "用户@例子.广告", _mail("用户@例子.广告", "用户", "打印机"))
        [ack] = wait_until(lambda: utf8_sink.messages)
    assert ack.rcpt_tos == ["用户@xn--fsqu00a.xn--4rr70v"]   # the domain in A-labels, as ascii_domain writes it
    assert "To: 用户@xn--fsqu00a.xn--4rr70v\r\n".encode() in ack.raw
    assert ack.message["To"] == "用户@xn--fsqu00a.xn--4rr70v"


def test_an_ascii_customer_is_sent_as_before(make_app, sqlite_url, utf8_sink):
    app = _app(make_app, sqlite_url, utf8_sink)
    with running(app):
        _send(app.settings.smtp.host_port[1], "cust@example.org", _mail("cust@example.org", "Kunde", "Grüße"))
        [ack] = wait_until(lambda: utf8_sink.messages)
    assert ack.rcpt_tos == ["cust@example.org"]
    assert utf8_sink.options_for("cust@example.org") == []
    assert ack.raw.isascii()
    assert bytes(_row_to(app, "cust@example.org")["raw"]) == ack.raw


def test_without_smtputf8_at_the_smarthost_the_mail_fails_at_once_and_ascii_mail_still_goes(
        make_app, db_url, ascii_sink):
    app = _app(make_app, db_url, ascii_sink)
    with running(app):
        port = app.settings.smtp.host_port[1]
        _send(port, "müller@example.de", _mail("müller@example.de", "Bernd Müller", "Grüße"))
        failed = _row_to(app, "müller@example.de")
        _send(port, "cust@example.org", _mail("cust@example.org", "Kunde", "Hallo"))
        [ack] = wait_until(lambda: ascii_sink.messages)
        sent = _row_to(app, "cust@example.org")
    reason = "the smarthost does not offer SMTPUTF8 (RFC 6531), needed for müller@example.de"
    assert (failed["state"], failed["attempts"], failed["last_error"]) == ("failed", 1, reason)
    ticket = next(t for t in _tickets(app) if t["requester"] == "müller@example.de")
    [event] = ticket_events(app, ticket["id"], "delivery_failed")
    assert reason in event["reason"]
    assert sent["state"] == "sent"
    assert ack.rcpt_tos == ["cust@example.org"]
    assert [m.rcpt_tos for m in ascii_sink.messages] == [["cust@example.org"]]
