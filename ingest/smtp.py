"""The SMTP receiver: answers 250 only once the raw bytes are committed.

Protocol is aiosmtpd's; policy is this handler. Our own trouble is always a
4xx (RFC 5321 section 4.2.5: the sender keeps the mail and retries), never a
5xx, which would make the sender bounce a customer's mail.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ingest.parse import dedupe_key
from ticketd.app import App
from ticketd.store.inbox import RawMail, Stored, store_raw_batch

log = logging.getLogger("ticketd.smtp")

# Replies, named (RFC 5321 section 4.2, RFC 3463 enhanced codes).
OK = "250 2.0.0 OK: queued as {}"
OK_DUPLICATE = "250 2.0.0 OK: already have it as {}"
RCPT_OK = "250 2.1.5 OK"
NO_SUCH_USER = "550 5.1.1 <{}>: no such mailbox here"
TEMP_FAILURE = "451 4.3.0 Temporary local problem, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


def served(app: App, address: str) -> bool:
    """Addresses we accept mail for: the support address, its +tokens, extras."""
    address = address.lower().strip("<> ")
    support = app.settings.support_address
    local, domain = support.split("@", 1)
    a_local, _, a_domain = address.partition("@")
    if a_domain == domain and (a_local == local or a_local.startswith(local + "+")):
        return True
    return address in {a.lower() for a in app.settings.smtp.extra_addresses}


class GroupCommitter:
    """One writer thread that commits whatever mail is waiting in one transaction.

    With several senders at once, N mails cost one commit (one fsync)
    instead of N; alone, a mail is committed at once. Each caller waits on
    its own future and answers 250 only when its row is durable.
    """

    MAX_BATCH = 64

    def __init__(self, app: App) -> None:
        self.app = app
        self._queue: queue.Queue[tuple[RawMail, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="smtp-commit", daemon=True)
        self._thread.start()

    def submit(self, mail: RawMail) -> Future:
        future: Future = Future()
        self._queue.put((mail, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                results = store_raw_batch(self.app.engine, [mail for mail, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), stored in zip(batch, results):
                future.set_result(stored)
            self.app.mail_arrived.set()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


class IntakeHandler:
    """aiosmtpd handler: refuse what we do not serve, commit what we accept."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.accepting = True
        self._in_flight = 0
        self._idle = threading.Condition()
        self.committer = GroupCommitter(app)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options):
        if not self.accepting:
            return SHUTTING_DOWN
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        if not self.accepting:
            return SHUTTING_DOWN
        if not served(self.app, address):
            return NO_SUCH_USER.format(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        with self._idle:
            self._in_flight += 1
        try:
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            key, message_id = dedupe_key(raw)
            mail = RawMail(raw, "smtp", key, message_id, envelope.mail_from,
                           [r.lower() for r in envelope.rcpt_tos])
            stored: Stored = await asyncio.wrap_future(self.committer.submit(mail))
            log.info("stored raw mail %s (Message-ID %s)%s", stored.raw_id, message_id,
                     " again" if stored.duplicate else "")
        except Exception:
            log.exception("could not store mail from %s; answered 451", envelope.mail_from)
            return TEMP_FAILURE
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        return (OK_DUPLICATE if stored.duplicate else OK).format(stored.raw_id)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer 500 to an unhandled error; for us it is ours.
        log.exception("SMTP session error", exc_info=error)
        return TEMP_FAILURE

    def stop_accepting(self, timeout: float = 30) -> bool:
        """Refuse new mail (421) and wait for mail being committed; True if idle."""
        self.accepting = False
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class _TolerantController(Controller):
    """aiosmtpd, but a mail is not refused for its line lengths.

    RFC 5321 section 4.5.3.1.6 limits a line to 1000 octets, and aiosmtpd
    answers 500 to a longer one, and so to a whole mail with bare LF line
    ends (it counts lines by CRLF). A 5xx makes the sender bounce a
    customer's mail; like Postfix we take such mail instead. Only CRLF.CRLF
    still ends the data (no SMTP smuggling), and the size limit still holds.
    """

    def __init__(self, *args, line_length_limit: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._server_class = type("TolerantSMTP", (SMTP,), {"line_length_limit": line_length_limit})

    def factory(self) -> SMTP:
        return self._server_class(self.handler, **self.SMTP_kwargs)


class Receiver:
    """Start and stop the SMTP receiver on the configured address."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.handler = IntakeHandler(app)
        host, port = app.settings.smtp.host_port
        self.controller = _TolerantController(
            self.handler, hostname=host, port=port, server_hostname=app.settings.support_domain,
            data_size_limit=app.settings.smtp.max_message_bytes,  # 552 at MAIL FROM SIZE= and at DATA
            decode_data=False, ident="ticketd ESMTP",
            line_length_limit=app.settings.smtp.max_message_bytes,
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> None:
        self.controller.start()
        log.info("SMTP receiver listening on %s:%s", self.controller.hostname, self.controller.port)

    def stop(self, timeout: float = 30, grace: float = 1.0) -> None:
        """Answer 421 from now on, let mail in flight commit, then close.

        The short grace keeps the socket open so a client between commands
        hears 421 (RFC 5321 section 3.8) rather than a bare disconnect.
        """
        self.handler.stop_accepting(timeout)
        time.sleep(grace)
        self.controller.stop()
        self.handler.committer.close()
