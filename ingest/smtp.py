"""The SMTP receiver: answers 250 only once the raw bytes are committed.

Protocol is aiosmtpd's; policy is this handler. Our own trouble is always a
4xx (RFC 5321 section 4.2.5: the sender keeps the mail and retries), never a
5xx, which would make the sender bounce a customer's mail.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import queue
import re
import threading
from concurrent.futures import Future
from datetime import UTC, datetime

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from ingest.headers import ascii_domain
from ingest.parse import dedupe_key, mbox_separator_end
from ingest.trace import received_line
from ticketd.app import App
from ticketd.domain.loops import POSTMASTER
from ticketd.outage import Outage, said
from ticketd.store.db import unreachable
from ticketd.store.inbox import RawMail, Stored, store_raw_batch

log = logging.getLogger("ticketd.smtp")
protocol_log = logging.getLogger("mail.log")   # aiosmtpd's own

# Replies, named (RFC 5321 section 4.2, RFC 3463 enhanced codes).
OK = "250 2.0.0 OK: queued as {}"
OK_DUPLICATE = "250 2.0.0 OK: already have it as {}"
RCPT_OK = "250 2.1.5 OK"
NO_SUCH_USER = "550 5.1.1 <{}>: no such mailbox here"
TEMP_FAILURE = "451 4.3.0 Temporary local problem, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
# The greeting of a connection opened while stopping: RFC 5321 section 4.2
# puts the domain first, and RFC 2034 section 3 keeps enhanced codes out of it.
GREETING_SHUTTING_DOWN = "421 {} shutting down, try again later"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
# What aiosmtpd answers itself to a mail past its (wire) limit: at MAIL FROM for a SIZE= beyond it, after
# the data for more data, and for a line beyond line_length_limit (which is the size limit: IntakeSMTP).
_AIOSMTPD_TOO_BIG = frozenset({"552 Error: message size exceeds fixed maximum message size",
                               "552 Error: Too much mail data"})
_LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
# RFC 6531 section 3.3: an address in a MAIL or RCPT is UTF-8; other 8-bit
# bytes cannot name a mailbox, and a 4xx would only bring them back.
BAD_SENDER = "553 5.1.7 The sender address is not UTF-8 (RFC 6531)"
BAD_RECIPIENT = "553 5.1.3 The recipient address is not UTF-8 (RFC 6531)"

# On stop, a mail whose body is still arriving may take this long to end
# and be stored (its 250); past it, the sender gets 421 and the half mail
# is dropped, so the sender retries the whole of it. Bounded so a slow or
# stalled sender cannot hold a stop (and a service manager's timeout) hostage.
DATA_GRACE_SECONDS = 30.0
# After that, how long a mail already received may take to be committed.
COMMIT_WAIT_SECONDS = 30.0
# Beyond both, for the event loop to hand back the drain's outcome.
DRAIN_SLACK_SECONDS = 5.0
# Then the committer's thread is joined: by then it has nothing left to commit but for a database that hangs.
COMMITTER_CLOSE_SECONDS = 30.0
# The longest Receiver.stop takes with its defaults: a service manager's stop timeout counts it
# (ticketd/daemon.py run_stop_seconds, deploy/ticketd.service).
STOP_SECONDS = DATA_GRACE_SECONDS + COMMIT_WAIT_SECONDS + DRAIN_SLACK_SECONDS + COMMITTER_CLOSE_SECONDS
# On stop, a session with no transaction open is told 421 unasked once it
# has been quiet this long since our last reply: time for the QUIT (or MAIL)
# that follows a 250 to arrive and be answered 221 (or 421), rather than
# crossing an unasked 421 on the wire.
IDLE_LINGER_SECONDS = 2.0
# How long a sender may stay quiet, awaited for its next command or the
# rest of its mail, before its connection is closed: RFC 5321 section
# 4.5.3.2.7 asks for at least 5 minutes.
IDLE_TIMEOUT_SECONDS = 300.0


def wire_limit(max_message_bytes: int) -> int:
    """The most DATA bytes a mail of `max_message_bytes` can take on the wire.

    RFC 1870's SIZE is the message without the dot-stuffing of RFC 5321
    section 4.5.2, but aiosmtpd counts the stuffed bytes. A stuffed line is
    at least ".X" CRLF on the wire and one dot longer than in the message,
    so the wire carries at most 4/3 of the message. aiosmtpd stops keeping
    data past this bound, which also bounds the memory a sender can take.
    """
    return max_message_bytes + max_message_bytes // 3 + 1


def _declared_size(mail_options: list[str]) -> int | None:
    """The SIZE= of a MAIL FROM (RFC 1870), already checked to be ASCII digits (IntakeSMTP._getparams)."""
    for option in mail_options:
        keyword, _, value = option.partition("=")
        if keyword.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def _utf8(address: str) -> bool:
    """Whether an address aiosmtpd read with SMTPUTF8 on came as UTF-8 (it escapes other bytes)."""
    return not any("\udc80" <= ch <= "\udcff" for ch in address)


def _address_key(address: str) -> str:
    """An address as compared here: lower case, its domain in ASCII (IDNA, RFC 5890).

    With SMTPUTF8 a sender may write our domain in U-labels (RFC 6531
    section 3.3), `bücher.example` for `xn--bcher-kva.example`. The local
    part is lowered like an ASCII one, although RFC 6531 leaves its case to
    the mailbox's owner as RFC 5321 section 2.4 does.
    """
    return ascii_domain(address.lower().strip("<> "))


def _printable(text: object) -> str:
    """What a sender wrote, for a reply or a log line: control characters (a NUL, a CR that would hide the
    start of the line on a terminal) as `?`."""
    return "".join("?" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(text))


def _shown(address: str) -> str:
    """An address as a reply echoes it: without its brackets (`RCPT TO:<>` is `<>`, not `<<>>`)."""
    return _printable(address.strip().strip("<>"))


def served(app: App, address: str) -> bool:
    """Addresses we accept mail for: the support address, its +tokens, extras, and postmaster.

    RFC 5321 section 4.5.1: a server that delivers mail MUST accept
    `postmaster`, bare or at its domain; what is written there (a remote
    admin about our mail, a complaint) becomes a ticket like any mail.
    """
    local, _, domain = _address_key(app.settings.support_address).rpartition("@")
    key = _address_key(address)
    if key == POSTMASTER:
        return True
    a_local, _, a_domain = key.rpartition("@")
    if a_domain == domain and (a_local in (local, POSTMASTER) or a_local.startswith(local + "+")):
        return True
    return _address_key(address) in {_address_key(a) for a in app.settings.smtp.extra_addresses}


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
                self._commit(batch)
            except Exception:   # this thread is the only way into the database: it must outlive any mail
                log.exception("the SMTP commit thread failed on a batch of %d mails; it goes on", len(batch))
            finally:
                self.app.mail_arrived.set()

    def _commit(self, batch: list[tuple[RawMail, Future]]) -> None:
        """Store the batch and answer each waiting sender.

        A sender that left before its answer (its connection closed while it
        waited) had its future cancelled: its mail is stored all the same, as
        the retry it will make would be, and logged here, since nobody awaits
        the future that would have. Once marked running, a future can no
        longer be cancelled, so the answers below cannot fail.
        """
        left = [not future.set_running_or_notify_cancel() for _, future in batch]
        try:
            results = store_raw_batch(self.app.engine, [mail for mail, _ in batch])
        except Exception as exc:
            for (mail, future), gone in zip(batch, left):
                if not gone:
                    future.set_exception(exc)
            if all(left):
                log.warning("could not store %d mail(s) whose senders had left: %s", len(batch), exc)
            return
        for (mail, future), stored, gone in zip(batch, results, left):
            if gone:
                log.info("stored raw mail %s (Message-ID %s), though its sender left before the answer",
                         stored.raw_id, _printable(mail.message_id or "none"))
            else:
                future.set_result(stored)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=COMMITTER_CLOSE_SECONDS)


class IntakeHandler:
    """aiosmtpd handler: refuse what we do not serve, commit what we accept."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.max_bytes = app.settings.smtp.max_message_bytes
        self.accepting = True
        self.committer = GroupCommitter(app)
        self.database = Outage()   # the database out of reach: its start and end logged once, each 451 a line

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # aiosmtpd announces its own (wire) limit; SIZE is the message's (RFC 1870).
        session.host_name = hostname
        return [f"250-SIZE {self.max_bytes}" if r.startswith("250-SIZE ") else r for r in responses]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options):
        if not self.accepting:
            return SHUTTING_DOWN
        declared = _declared_size(mail_options)
        if declared is not None and declared > self.max_bytes:
            return TOO_BIG   # RFC 1870 section 6.1: refuse now, not after the transfer
        if not _utf8(address):
            return BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        # Also while stopping: a transaction begun before the stop may end (Receiver.stop).
        if not _utf8(address):
            return BAD_RECIPIENT   # not echoed: aiosmtpd writes replies as UTF-8, which it is not
        if not served(self.app, address):
            return NO_SUCH_USER.format(_shown(address))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if len(raw) > self.max_bytes:
            # Measured here, without the dot-stuffing aiosmtpd's limit counts.
            log.info("refused a mail of %s bytes from %s (limit %s)", len(raw), _printable(envelope.mail_from),
                     self.max_bytes)
            return TOO_BIG
        try:
            # The key of the mail as the sender wrote it: a second delivery, with our line's other time, is the same.
            key, message_id = dedupe_key(raw)
            mail = RawMail(_with_trace(server, session, envelope, raw), "smtp", key, message_id, envelope.mail_from,
                           [r.lower() for r in envelope.rcpt_tos])
            stored: Stored = await asyncio.wrap_future(self.committer.submit(mail))
            log.info("stored raw mail %s (Message-ID %s)%s", stored.raw_id, _printable(message_id or "none"),
                     " again" if stored.duplicate else
                     ": a different mail reusing the Message-ID of one already stored, kept as a new mail"
                     if stored.derived else "")
        except Exception as error:
            if not unreachable(error):
                log.exception("could not store mail from %s; answered 451", _printable(envelope.mail_from))
            elif self.database.failed(error):
                # A traceback per mail (about 100 lines) buried the log for as long as the database was away.
                log.warning("cannot store mail: the database is out of reach (%s). Every mail is answered 451, "
                            "for its sender to retry, until it is back; said again only then",
                            said(error))
            else:
                log.info("could not store mail from %s (the database is still out of reach); answered 451",
                         _printable(envelope.mail_from))
            return TEMP_FAILURE
        if (down := self.database.worked()) is not None:
            log.info("the database takes mail again after %.0f s", down)
        return (OK_DUPLICATE if stored.duplicate else OK).format(stored.raw_id)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer 500 to an unhandled error; for us it is ours.
        log.exception("SMTP session error", exc_info=error)
        return TEMP_FAILURE


def _with_trace(server: SMTP, session: Session, envelope: Envelope, raw: bytes) -> bytes:
    """`raw` under our Received line (ingest/trace.py), in the mail's own line ending."""
    first = raw.find(b"\n")
    line_end = b"\r\n" if first > 0 and raw[first - 1:first] == b"\r" else b"\n"
    smtputf8 = any(str(option).upper() == "SMTPUTF8" for option in envelope.mail_options)
    line = received_line(helo=session.host_name, peer=session.peer, by=server.hostname, esmtp=session.extended_smtp,
                         smtputf8=smtputf8, recipients=envelope.rcpt_tos, when=datetime.now(UTC), line_end=line_end)
    head = mbox_separator_end(raw)   # under an mbox separator line the header block begins (ingest/parse.py)
    return raw[:head] + line + raw[head:]


# RFC 5321 section 4.1.2: a Mailbox of dot-atoms in angle brackets, as nearly every sender writes its MAIL
# and RCPT, then its parameters after a space. For such an argument the stdlib's address parser, which
# aiosmtpd calls, gives back the address as written and the rest after the space; anything else (a quoted
# local part, an address literal, a comment, 8-bit text, the null sender `<>`) is left to it. The parser
# takes any white space (str.isspace) or comment after the `>` as part of the path, so the rest must not start so.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:\Z| +(?=[^\s(]))")


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a MAIL or RCPT argument `<local@domain> PARAMS` in dot-atoms; None for any other."""
    found = _PLAIN_PATH.match(arg)
    return None if found is None else (found[1], arg[found.end():])


# The end of a mail's data (RFC 5321 section 4.5.2): a line holding only a dot.
_DOT_LINE = b".\r\n"


def ends_data(data: bytearray) -> bool:
    """Whether `data`, which ends in `.` CRLF, ends there: the dot starts the data or follows a CRLF."""
    dot = len(data) - len(_DOT_LINE)
    return dot == 0 or data[dot - 2:dot] == b"\r\n"


def unstuffed(data: bytes) -> bytes:
    """The mail in `data` (lines ending in CRLF, the final dot line left out) without the dot each line that
    starts with one carries on the wire (RFC 5321 section 4.5.2)."""
    data = data.replace(b"\r\n.", b"\r\n")
    return data[1:] if data.startswith(b".") else data


def longest_line(data: bytes) -> int:
    """The length of the longest CRLF-ended line in `data`, its CRLF counted."""
    return max(map(len, data.split(b"\r\n"))) + 2


class Phase(enum.Enum):
    """Where one SMTP connection is, as far as stopping is concerned."""

    IDLE = "between transactions"      # told 421 and closed once quiet for IDLE_LINGER_SECONDS
    ENVELOPE = "giving an envelope"    # MAIL taken: may finish within DATA_GRACE_SECONDS
    BODY = "receiving a mail"          # may finish within DATA_GRACE_SECONDS
    STORING = "committing a mail"      # gets its 250 (or 451) first


class Connections:
    """The open SMTP connections, and whether the receiver is stopping.

    Touched only from the receiver's event loop thread.
    """

    def __init__(self) -> None:
        self.open: set[IntakeSMTP] = set()
        self.stopping = False

    def in_phase(self, *phases: Phase) -> list[IntakeSMTP]:
        """The connections in one of `phases` that are not already being closed."""
        return [c for c in self.open if c.phase in phases and not c.closing]


class IntakeSMTP(SMTP):
    """aiosmtpd's protocol for one connection, which knows its phase so a stop can spare mail in flight.

    It also takes mail with long lines. RFC 5321 section 4.5.3.1.6 limits a
    line to 1000 octets, and aiosmtpd answers 500 to a longer one, and so to
    a whole mail with bare LF line ends (it counts lines by CRLF). A 5xx
    makes the sender bounce a customer's mail; like Postfix we take such
    mail instead. Only CRLF.CRLF still ends the data (no SMTP smuggling),
    and the size limit still holds.
    """

    def __init__(self, handler: IntakeHandler, *, connections: Connections, line_length_limit: int,
                 **kwargs) -> None:
        self.line_length_limit = line_length_limit   # read by SMTP.__init__ for its stream reader
        super().__init__(handler, **kwargs)
        self.connections = connections
        self._receiving = self._storing = False   # inside DATA; its mail complete and being committed
        self.replied_at = 0.0   # loop time of our last reply (or of the connection)
        self.heard_at = 0.0     # loop time of the last bytes from the sender

    @property
    def phase(self) -> Phase:
        if self._receiving:
            return Phase.STORING if self._storing else Phase.BODY
        return Phase.IDLE if self.envelope is None or self.envelope.mail_from is None else Phase.ENVELOPE

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.replied_at = self.loop.time()
        self.connections.open.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.connections.open.discard(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.heard_at = self.loop.time()   # once per read from the socket, not per line
        super().data_received(data)

    def _timeout_cb(self) -> None:
        """Close the connection only once the sender has been quiet for the whole timeout.

        aiosmtpd arms its timer at each command, so a mail still arriving
        steadily was cut off that long after its DATA: a big mail on a slow
        link, every retry alike, until its sender bounced it. RFC 5321
        section 4.5.3.2 times each read, not the transfer.
        """
        quiet = self.loop.time() - max(self.heard_at, self.replied_at)
        if quiet < self._timeout_duration:
            self._reset_timeout(self._timeout_duration - quiet)
        else:
            super()._timeout_cb()

    async def _handle_client(self) -> None:
        # Opened while stopping: the listener stays open until the mail in
        # flight is done, so a sender hears why (RFC 5321 sections 3.8 and
        # 4.2.2) and retries later, rather than finding the port closed.
        if self.connections.stopping:
            await self.push(GREETING_SHUTTING_DOWN.format(self.hostname))
            return
        await super()._handle_client()

    async def smtp_AUTH(self, arg: str) -> None:
        """AUTH is not offered (EHLO does not announce it): 502, not aiosmtpd's "538 encryption required",
        which tells a client to try again over TLS. Without a syntax of its own, HELP does not list it."""
        await self.push("502 5.5.1 AUTH is not offered here")

    async def push(self, status) -> None:
        """Send a reply; a 421 closes the connection, as RFC 5321 section 3.8 says it does."""
        if isinstance(status, str) and (status in _AIOSMTPD_TOO_BIG or (self._receiving and status == _LINE_TOO_LONG)):
            # aiosmtpd's own refusals of a mail past the wire limit: one reply for every mail too big
            # (docs/settings.md), and in DATA a line longer than the whole limit is one too, not a
            # syntax error (500) its sender would bounce as ours.
            log.info("refused a mail over the size limit from %s (%s)",
                     _printable(getattr(self.envelope, "mail_from", None)), status)
            status = TOO_BIG
        await super().push(status)
        self.replied_at = self.loop.time()
        if (status[:4] in ("421 ", b"421 ")) and not self.closing:
            self.transport.close()

    def _getparams(self, params):
        """ESMTP parameters as aiosmtpd reads them; None (501) for a SIZE that is not ASCII digits.

        RFC 1870 section 6 makes size-value 1*20DIGIT, ASCII (RFC 5234).
        aiosmtpd checks it with str.isdigit, which `²` passes, and then its
        int() raised: the sender heard 451 and sent the same MAIL again for days.
        """
        result = super()._getparams(params)
        size = result.get("SIZE") if result else None
        if isinstance(size, str) and not (size.isascii() and size.isdigit()):
            return None
        return result

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's reading of a MAIL or RCPT argument, with the common `<local@domain>` read by a pattern.

        The stdlib's full address parser took a tenth of the receiver's time
        for an answer the pattern gives alike (tests/test_smtp_address_reading.py).
        """
        plain = plain_path(arg)
        if plain is None or (self.local_part_limit and len(plain[0].rpartition("@")[0]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain

    @syntax("DATA")   # as aiosmtpd's own: HELP lists only commands that carry their syntax
    async def smtp_DATA(self, arg: str) -> None:
        self._receiving, self._storing = True, False
        try:
            if self._decode_data:
                await super().smtp_DATA(arg)
            else:
                await self._data(arg)
        finally:
            self._receiving = False

    async def _data(self, arg: str) -> None:
        """aiosmtpd's DATA (1.4.6), its replies and limits alike, reading the mail in blocks instead of lines.

        aiosmtpd awaits each line of a mail on its own, which took a third
        of the receiver's time; here each read runs to the next `.` CRLF, and
        only one that starts a line ends the data.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:
            return   # the connection closed before the final dot: nothing is kept
        limit = self.data_size_limit
        if isinstance(data, int) or len(data) > self.line_length_limit:
            size = data if isinstance(data, int) else len(data)
            # Replies as aiosmtpd's; push() makes each the 552 of a mail too big.
            if limit and size > limit:
                await self.push("552 Error: Too much mail data")
                self._set_post_data_state()
                return
            if longest_line(data) > self.line_length_limit:
                await self.push(_LINE_TOO_LONG)
                self._set_post_data_state()
                return
        self.envelope.content = self.envelope.original_content = unstuffed(bytes(data))
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytearray | int | None:
        """The data up to its final dot line, left out; only its size once past the size limit; None if the
        connection closed first.

        Past the limit the bytes are dropped as they come, but for the last
        two, which say whether a dot that follows starts a line.
        """
        limit = self.data_size_limit
        data = bytearray()
        dropped = 0
        while self.transport is not None:
            try:
                data += await self._reader.readuntil(_DOT_LINE)
            except asyncio.CancelledError:
                protocol_log.info("Connection lost during DATA")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as error:
                # No dot line within the reader's limit: take what was searched, and read on.
                data += await self._reader.readexactly(error.consumed)
            else:
                if ends_data(data):
                    del data[-len(_DOT_LINE):]
                    return dropped + len(data) if dropped else data
            if limit and dropped + len(data) > limit:
                dropped += len(data) - 2
                del data[:-2]
        return None

    async def _call_handler_hook(self, command: str, *args):
        # aiosmtpd (pinned to 1.4.6) calls every handler hook through here;
        # DATA's only once the final dot is in and the data is within limits.
        if command == "DATA":
            self._storing = True
        return await super()._call_handler_hook(command, *args)

    def hang_up(self) -> None:
        """Say 421 unasked and close, as RFC 5321 section 3.8 lets a server that shuts down."""
        if not self.closing:
            self.transport.write(SHUTTING_DOWN.encode("ascii") + b"\r\n")
            self.transport.close()


class _IntakeController(Controller):
    """aiosmtpd's controller, serving each connection with an IntakeSMTP."""

    def __init__(self, handler: IntakeHandler, *, connections: Connections, line_length_limit: int,
                 **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.connections = connections
        self.line_length_limit = line_length_limit

    def factory(self) -> SMTP:
        return IntakeSMTP(self.handler, connections=self.connections, line_length_limit=self.line_length_limit,
                          **self.SMTP_kwargs)


class Receiver:
    """Start and stop the SMTP receiver on the configured address."""

    def __init__(self, app: App, *, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.handler = IntakeHandler(app)
        self.connections = Connections()
        host, port = app.settings.smtp.host_port
        max_bytes = app.settings.smtp.max_message_bytes
        self.controller = _IntakeController(
            self.handler, hostname=host, port=port, server_hostname=app.settings.support_domain,
            # aiosmtpd counts dot-stuffed wire bytes; the handler announces
            # and enforces max_message_bytes on the message itself (552).
            data_size_limit=wire_limit(max_bytes),
            # Raw bytes to the handler (RFC 6152 8BITMIME), and SMTPUTF8 (RFC
            # 6531) for customers whose addresses are not ASCII: set here, not
            # left to the controller's default, which differs from the SMTP
            # class's. aiosmtpd then reads MAIL and RCPT arguments as UTF-8.
            decode_data=False, enable_SMTPUTF8=True,
            ident="ticketd ESMTP", timeout=idle_timeout, connections=self.connections,
            line_length_limit=max_bytes + 1,   # one line of a mail at the limit, plus its stuffed dot
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> None:
        self.controller.start()
        log.info("SMTP receiver listening on %s:%s", self.controller.hostname, self.controller.port)

    def stop(self, timeout: float = COMMIT_WAIT_SECONDS, *, body_grace: float = DATA_GRACE_SECONDS) -> None:
        """Stop taking mail, finish the mail in flight, then close.

        While the mail in flight finishes, the port stays open and a new
        connection is greeted 421 and closed (RFC 5321 sections 3.8, 4.2.2);
        MAIL in an open session gets 421 and the session is closed. A session
        between transactions hears 421 unasked once quiet for
        IDLE_LINGER_SECONDS, so a QUIT right after a 250 still gets its 221.
        A transaction begun before the stop has `body_grace` seconds to end
        and get its 250, else 421 and nothing is stored; a mail being
        committed has `timeout` seconds more. What was committed becomes
        tickets in the back office's last pass (ticketd/daemon.py).
        """
        self.handler.accepting = False
        drained = asyncio.run_coroutine_threadsafe(self._drain(body_grace, timeout), self.controller.loop)
        try:
            drained.result(body_grace + timeout + DRAIN_SLACK_SECONDS)
        except Exception:
            log.exception("SMTP receiver: stopping the sessions failed; closing anyway")
        self.controller.stop()
        self.handler.committer.close()

    async def _drain(self, body_grace: float, timeout: float) -> None:
        """Wait for the sessions to end, telling each 421 when its turn comes; bounded by body_grace + timeout."""
        connections = self.connections
        connections.stopping = True   # from here a new connection is greeted 421 (IntakeSMTP._handle_client)
        loop = asyncio.get_running_loop()
        arriving = connections.in_phase(Phase.ENVELOPE, Phase.BODY, Phase.STORING)
        if arriving:
            log.info("SMTP receiver stopping: waiting for %s mail in flight", len(arriving))
        body_deadline = loop.time() + body_grace
        settled_at: float | None = None   # when no mail was left arriving: `timeout` counts from there
        while connections.open:
            now = loop.time()
            for conn in connections.in_phase(Phase.IDLE):
                if now - conn.replied_at >= IDLE_LINGER_SECONDS:
                    conn.hang_up()
            if now >= body_deadline:
                for conn in connections.in_phase(Phase.ENVELOPE, Phase.BODY):
                    log.warning("stopping: a mail from %s still arriving after %s s; answered 421, not stored",
                                conn.envelope.mail_from, body_grace)
                    conn.hang_up()
            if settled_at is None and not connections.in_phase(Phase.ENVELOPE, Phase.BODY):
                settled_at = now
            if settled_at is not None and now >= settled_at + timeout:
                for conn in list(connections.open):
                    log.error("stopping: a session (%s) did not end in %s s; cut off", conn.phase.value, timeout)
                    if conn.transport is not None:
                        conn.transport.abort()
                break
            await asyncio.sleep(0.02)
        self.controller.server.close()   # only now: until here a new connection heard why it was turned away
        last = loop.time() + 0.5   # one accepted in the last moment is greeted before the loop stops
        while connections.open and loop.time() < last:
            await asyncio.sleep(0.02)
