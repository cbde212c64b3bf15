"""An aiosmtpd outbound sink for tests (records mail, answers 451/550, stops), and helpers to drive ticketd.

    sink = Sink(port); sink.start()
    sink.fail_next(3)          # the next three DATA commands get 451
    sink.reject = True         # every DATA gets 550 until set back (or a set of recipients)
    sink.data_delay = 0.3      # a slow smarthost: each DATA received from now on is answered that many seconds late
    sink.stop(); sink.start()  # down and up again on the same port
    sink.wait_for(2, timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import smtplib
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from sqlalchemy import select

from ticketd.store.tables import events, outbox
from tests.waiting import eventually


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    at: float = 0.0          # time.monotonic() when the sink answered 250
    peer: tuple = ()         # the client's (host, port): one per SMTP connection

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _Handler:
    def __init__(self, sink: "Sink") -> None:
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sink.refuse_sender:
            return self.sink.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.refuse_recipient:
            return self.sink.refuse_recipient
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            self.sink.data_started += 1
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        with self.sink.lock:
            self.sink.attempts += 1
            if self.sink.reject is True or set(envelope.rcpt_tos) & set(self.sink.reject or ()):
                return "550 5.1.1 <%s>: mailbox unavailable" % ",".join(envelope.rcpt_tos)
            if self.sink.failures_left > 0:
                self.sink.failures_left -= 1
                return "451 4.3.0 try again later"
            raw = envelope.original_content or envelope.content
            self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw),
                                               time.monotonic(), tuple(session.peer or ())))
            self.sink.arrived.notify_all()
        return "250 2.0.0 OK"


class Sink:
    def __init__(self, port: int, host: str = "127.0.0.1", *, tls_context=None, implicit_tls_context=None,
                 credentials: tuple[str, str] | None = None) -> None:
        """tls_context: offer STARTTLS and require it; implicit_tls_context: TLS from the first byte
        (port 465 style); credentials: require AUTH with them."""
        self.host, self.port = host, port
        self.tls_context = tls_context
        self.implicit_tls_context = implicit_tls_context
        self.credentials = credentials
        self.logins: list[str] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.messages: list[Received] = []
        self.attempts = 0         # DATA commands answered
        self.data_started = 0     # DATA commands received (answered or not yet: see data_delay)
        self.failures_left = 0
        self.reject: bool | set[str] = False   # True: 550 for all; a set: 550 for those recipients
        self.data_delay = 0.0
        self.refuse_sender: str | None = None  # a reply to MAIL FROM instead of 250, e.g. "553 5.7.1 not yours"
        self.refuse_recipient: str | None = None   # a reply to RCPT TO instead of 250, e.g. "550 5.1.1 unknown"
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and self.credentials == (
            auth_data.login.decode(), auth_data.password.decode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> "Sink":
        options: dict = {}
        if self.tls_context is not None:
            options.update(tls_context=self.tls_context, require_starttls=True)
        if self.implicit_tls_context is not None:
            options.update(ssl_context=self.implicit_tls_context)
        if self.credentials is not None:
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=self.tls_context is not None)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def fail_next(self, count: int) -> None:
        with self.lock:
            self.failures_left = count

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """Block until at least `count` mails arrived (or the timeout); a copy of all of them."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.arrived.wait(max(0.0, deadline - time.monotonic()))
            return list(self.messages)

    def settle(self, quiet: float = 1.0) -> list[Received]:
        """Wait until nothing new arrived for `quiet` seconds (to prove there are no duplicates)."""
        while True:
            before = len(self.messages)
            time.sleep(quiet)
            if len(self.messages) == before:
                return list(self.messages)


# ---------------------------------------------------------------- driving ticketd


def customer_mail(subject="Printer on fire", body="It is on fire.\n", sender="cust@example.org",
                  message_id=None, **headers) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Customer <{sender}>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{time.monotonic_ns()}@client.example.org>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def submit(app, msg: EmailMessage, mail_from: str | None = None, to: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
        client.send_message(msg, from_addr=mail_from, to_addrs=[to] if to else None)


def receive(app, *mails: EmailMessage) -> None:
    """Deliver mails through the real receiver and process them into tickets."""
    from ingest.smtp import Receiver
    from ticketd.pipeline import drain

    receiver = Receiver(app)
    receiver.start()
    try:
        for msg in mails:
            submit(app, msg)
        drain(app)
    finally:
        receiver.stop()


@contextlib.contextmanager
def running(app):
    """`ticketd run` in this process: receiver, processor, in-process workers, sweeper."""
    from ticketd.daemon import build_components

    components = build_components(app)
    for component in components:
        component.start()
    try:
        yield
    finally:
        for component in reversed(components):
            component.stop()


def wait_until(predicate, timeout: float = 10, step: float = 0.05):
    """Like tests.waiting.eventually, but a timeout fails the test here."""
    value = eventually(predicate, timeout, step)
    if not value:
        raise AssertionError(f"not true within {timeout}s: {predicate}")
    return value


def outbox_rows(app) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def ticket_events(app, ticket_id: int, kind: str | None = None) -> list[dict]:
    stmt = select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.id)
    if kind:
        stmt = stmt.where(events.c.kind == kind)
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def delivery_report(original_message_id: str, recipient: str) -> bytes:
    """A Postfix-style DSN (RFC 3464) to support@ saying `recipient` bounced the mail `original_message_id`."""
    return f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system. Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected

--B
Content-Type: text/rfc822-headers

From: Support <support@example.com>
To: {recipient}
Subject: [#1] Printer on fire
Message-ID: <{original_message_id}>

--B--
""".replace("\n", "\r\n").encode()
