"""Hand one stored mail to the smarthost over SMTP and classify the answer."""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from ingest.headers import ascii_domain, is_address
from ticketd.settings import OutboundSettings

SENT, RETRY, FAILED = "sent", "retry", "failed"

log = logging.getLogger("ticketd.outbound")


@dataclass(frozen=True)
class SendResult:
    outcome: str          # sent | retry | failed
    reply: str            # the server's reply (or our connection error), for the record
    # An answer about this mail alone (its recipient refused or greylisted, its size above the limit):
    # the session is good and the smarthost takes other mail, so a batch goes on over the same connection.
    mail_only: bool = False
    # A retry covered by an outage of the smarthost already said in the log (sends held, no TLS): the
    # mail's own "deferred" line need not say it again (outbound/delivery.py).
    outage_said: bool = False


def _context(settings: OutboundSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.verify_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _classify(code: int, text: str) -> SendResult:
    reply = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendResult(SENT, reply)
    # RFC 5321 section 4.2.1: 4yz is transient (try again), 5yz permanent.
    return SendResult(FAILED if 500 <= code < 600 else RETRY, reply)


# A delivery thread keeps its smarthost connection for the next mail, as
# MTAs do (Postfix's connection cache): connect, EHLO, STARTTLS and AUTH are
# most of an SMTP session's round trips. RSET (RFC 5321 section 4.1.1.5)
# checks a kept connection before it is used; a dead one is replaced
# before anything of the mail is sent, so reuse never sends a mail twice.
REUSE_SECONDS = 30      # idle connections older than this are closed, not probed
REUSE_MAILS = 100       # then a fresh connection, as Postfix's reuse limit
DATA_END_TIMEOUTS = 4   # the wait for the reply to DATA, in outbound.timeout_seconds (see _transaction)

_kept = threading.local()


@dataclass
class _Kept:
    key: tuple
    client: smtplib.SMTP
    idle_since: float
    mails: int


class _ImplicitTls(smtplib.SMTP_SSL):
    """SMTP over implicit TLS (RFC 8314 section 3.3): NoTls when the handshake fails, a timeout as it came."""

    def _get_socket(self, host, port, timeout):
        plain = socket.create_connection((host, port), timeout, self.source_address)
        try:
            return self.context.wrap_socket(plain, server_hostname=self._host)
        except OSError as exc:   # ssl.SSLError (a certificate that does not verify, no TLS spoken) is one
            plain.close()
            if _timed_out(exc):
                raise
            # RFC 8314 section 3.3: no fallback to plain text on the implicit TLS port.
            raise NoTls(f"TLS handshake failed: {type(exc).__name__}: {exc}") from exc


def _connect(settings: OutboundSettings) -> smtplib.SMTP:
    if settings.ssl:
        client: smtplib.SMTP = _ImplicitTls(settings.host, settings.port, timeout=settings.timeout_seconds,
                                            context=_context(settings))
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    try:
        client.ehlo_or_helo_if_needed()
        if settings.starttls and not settings.ssl:
            _starttls(client, settings)
        if settings.username:
            _login(client, settings.username, settings.password or "")
    except BaseException:
        _close(client)
        raise
    return client


class NoTls(smtplib.SMTPException):
    """The smarthost gave no TLS though `outbound.starttls` or `outbound.ssl` asks for it: not offered, refused,
    or the handshake or its certificate failed. Nothing of the mail was sent (RFC 3207 section 4, RFC 8314
    section 3.3: no mail in clear)."""


def _starttls(client: smtplib.SMTP, settings: OutboundSettings) -> None:
    """STARTTLS and EHLO again (RFC 3207 section 4.2); NoTls when there is no TLS, a timeout as it came."""
    try:
        client.starttls(context=_context(settings))
    except (smtplib.SMTPException, OSError) as exc:   # ssl.SSLError is an OSError
        if _timed_out(exc):
            raise
        reply = f"{exc.smtp_code} {_reply_text(exc)}" if isinstance(exc, smtplib.SMTPResponseException) else (
            f"{type(exc).__name__}: {exc}")
        raise NoTls(f"STARTTLS failed: {reply}") from exc
    client.ehlo()


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with the smarthost account; a name or password beyond ASCII goes in UTF-8.

    smtplib writes what it sends in AUTH as ASCII: a password such as
    "Grüße-2024" raised UnicodeEncodeError, and every mail failed for good.
    PLAIN carries both in UTF-8 (RFC 4616 section 2); LOGIN, which has no
    standard, is written the same way by the servers that offer it alone.
    """
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = client.esmtp_features["auth"].upper().split()
    user, secret = username.encode("utf-8"), password.encode("utf-8")
    if "PLAIN" in offered:
        code, reply = client.docmd("AUTH", "PLAIN " + _base64(b"\0" + user + b"\0" + secret))
    elif "LOGIN" in offered:
        code, reply = client.docmd("AUTH", "LOGIN")
        for answer in (user, secret):   # each after the server's 334 (RFC 4954 section 4)
            if code != 334:
                break
            code, reply = client.docmd(_base64(answer))
    else:
        raise smtplib.SMTPException("the smarthost offers no AUTH mechanism (PLAIN, LOGIN) that takes a "
                                    "user name or password beyond ASCII")
    if code not in (235, 503):   # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, reply)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _key(settings: OutboundSettings) -> tuple:
    return (settings.host, settings.port, settings.ssl, settings.starttls, settings.verify_certificates,
            settings.username, settings.password)


def _session(settings: OutboundSettings) -> _Kept:
    """This thread's kept connection if it still answers RSET, else a new one."""
    kept: _Kept | None = getattr(_kept, "session", None)
    _kept.session = None
    if kept is not None:
        fresh = time.monotonic() - kept.idle_since < REUSE_SECONDS and kept.mails < REUSE_MAILS
        if fresh and kept.key == _key(settings):
            try:
                if kept.client.rset()[0] == 250:
                    return kept
            except (smtplib.SMTPException, OSError):
                pass
        _close(kept.client)
    return _Kept(_key(settings), _connect(settings), 0.0, 0)


# A smarthost that takes the connection and never answers (a full backlog, a firewall that drops) costs
# each send outbound.timeout_seconds of a worker thread, and the in-process worker threads run the
# assignment jobs too. The same holds for one that greets and then stops answering MAIL or RCPT
# (RFC 5321 section 4.5.3.2): the connection is suspect, and nothing of the mail was taken before its
# final dot. After the dot (its own longer wait, DATA_END_TIMEOUTS) the mail may have been taken: it waits
# its own retry, never sent again by the hold. After one such timeout, sends to it are held for
# HOLD_TIMEOUTS times the timeout: each mail waits its retry at once, and one send looks again when the
# hold ends. Postfix does the same with a destination that timed out ("delivery temporarily suspended").
HOLD_TIMEOUTS = 2


@dataclass
class _Hold:
    until: float      # time.monotonic() when one send may look again
    reason: str       # what the last look found


_holds: dict[tuple[str, int], _Hold] = {}
_holds_lock = threading.Lock()


def _held(settings: OutboundSettings) -> SendResult | None:
    """A retry without connecting while sends to the smarthost are held; None when this send may go."""
    where = (settings.host, settings.port)
    with _holds_lock:
        hold = _holds.get(where)
        if hold is None:
            return None
        now = time.monotonic()
        if now >= hold.until:
            # This send looks again; the others stay held meanwhile, not all waiting out the timeout at once.
            hold.until = now + HOLD_TIMEOUTS * settings.timeout_seconds
            return None
        reason = hold.reason
    return SendResult(RETRY, f"not tried: sends to {_where(settings)} are held, it did not answer ({reason})",
                      outage_said=True)


def _hold(settings: OutboundSettings, exc: BaseException) -> bool:
    """Hold sends to the smarthost after it timed out; said once per outage, not per mail. Whether said now."""
    where, reason = (settings.host, settings.port), f"{type(exc).__name__}: {exc}"
    with _holds_lock:
        first = where not in _holds
        _holds[where] = _Hold(time.monotonic() + HOLD_TIMEOUTS * settings.timeout_seconds, reason)
    if first:
        log.warning("the smarthost %s did not answer within %s s (%s): sends to it are held, each mail waiting "
                    "its retry, and one send looks again every %s s until it answers", _where(settings),
                    settings.timeout_seconds, reason, HOLD_TIMEOUTS * settings.timeout_seconds)
    return first


_no_tls: set[tuple[str, int]] = set()   # smarthosts whose lack of TLS was said (once per outage)


def _tls_failed(settings: OutboundSettings, exc: NoTls) -> SendResult:
    """Say once per outage, as an error, that the smarthost gives no TLS and mail waits for it; the mail's retry."""
    with _holds_lock:
        first = (settings.host, settings.port) not in _no_tls
        _no_tls.add((settings.host, settings.port))
    if first:
        log.error("the smarthost %s gives no TLS, which %s asks for (%s): no mail is sent in clear, "
                  "each waits its retry until TLS works again", _where(settings),
                  "outbound.ssl" if settings.ssl else "outbound.starttls", exc)
    return SendResult(RETRY, str(exc), outage_said=not first)


def _timed_out(exc: BaseException | None) -> bool:
    """Whether `exc` is a timeout, or what smtplib raised for one (a disconnect in place of a reply)."""
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _tls_works(settings: OutboundSettings) -> None:
    """A session was made, in TLS where asked: an outage of TLS said is over."""
    with _holds_lock:
        tls_back = (settings.host, settings.port) in _no_tls
        _no_tls.discard((settings.host, settings.port))
    if tls_back:
        log.warning("the smarthost %s gives TLS again: mail goes", _where(settings))


def _answered(settings: OutboundSettings) -> None:
    """The smarthost answered a mail's transaction: sends to it are no longer held.

    Not its greeting alone: one that greets and then stops answering MAIL
    would end and start its hold at every look, said each time.
    """
    with _holds_lock:
        hold = _holds.pop((settings.host, settings.port), None)
    if hold is not None:
        log.warning("the smarthost %s answers again: sends to it are no longer held", _where(settings))


def _where(settings: OutboundSettings) -> str:
    return f"{settings.host}:{settings.port}"


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    return exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)


def header_address(address: str) -> str:
    """`address` as a header field of a compat32 mail carries it: an ASCII domain, a UTF-8 local part raw.

    An address is never an encoded word (RFC 2047 section 5 (3)); with
    SMTPUTF8 it is written in UTF-8 as it is (RFC 6532 section 3.2). The
    email package's compat32 writes a value holding surrogate-escaped bytes
    as those bytes (under an 8bit `cte_type`), and any other non-ASCII
    value as encoded words; so a UTF-8 local part goes in as its escaped
    bytes. An ASCII address comes back unchanged.
    """
    address = ascii_domain(address)
    if address.isascii():
        return address
    return address.encode("utf-8").decode("ascii", "surrogateescape")


_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")


def _head(raw: bytes) -> bytes:
    """The header section of a mail (RFC 5322 section 2.1): up to the first empty line, the body not copied."""
    end = _EMPTY_LINE.search(raw)
    return raw[:end.start()] if end else raw


def smtputf8_need(mail_from: str, recipient: str, raw: bytes) -> str | None:
    """What in this mail needs SMTPUTF8 (RFC 6531 section 3.2), or None when plain SMTP can carry it.

    A UTF-8 local part in the envelope needs it, and so do raw UTF-8 header
    fields (RFC 6532 section 3): 8BITMIME (RFC 6152) is for the body only.
    """
    for address in (recipient, mail_from):
        if not ascii_domain(address).isascii():
            return address
    if not _head(raw).isascii():
        return "the UTF-8 in its header fields (RFC 6532)"
    return None


def _transaction(client: smtplib.SMTP, mail_from: str, recipient: str, raw: bytes,
                 options: list[str]) -> SendResult:
    code, text = client.mail(ascii_domain(mail_from), options)
    if code != 250:
        # MAIL FROM is always the support address: a refusal there (553
        # "sender not owned") is the smarthost's setup, the same for every
        # mail, and the mail waits for the admin's fix like any 4xx.
        return SendResult(RETRY, f"{code} {text.decode('utf-8', 'replace')}".strip())
    code, text = client.rcpt(ascii_domain(recipient))
    if not 200 <= code < 300:
        return _refused_recipient(code, text.decode("utf-8", "replace"))
    # The reply to the final dot is waited for longer than any other: a smarthost that scans the mail
    # before it answers may have taken it, and giving up there sends it again later, a duplicate in the
    # recipient's mailbox (RFC 1047). RFC 5321 section 4.5.3.2.6 asks for 10 minutes; DATA_END_TIMEOUTS
    # stays inside the claim's lease (outbound.delivery.lease_seconds, 10 x timeout).
    if client.sock is not None:
        client.sock.settimeout(client.timeout * DATA_END_TIMEOUTS)
    try:
        code, text = client.data(raw)
    finally:
        if client.sock is not None:
            client.sock.settimeout(client.timeout)
    result = _classify(code, text.decode("utf-8", "replace"))
    if result.outcome == FAILED and _says_too_big(code, result.reply):
        return SendResult(FAILED, f"{result.reply} ({_size_words(len(raw), _size_limit(client))})")
    return result


def _size_limit(client: smtplib.SMTP) -> int | None:
    """The largest mail the smarthost takes, as its EHLO announced it (SIZE, RFC 1870); None if it named none."""
    value = client.esmtp_features.get("size", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None   # "SIZE 0": no fixed limit


def _size_words(size: int, limit: int | None) -> str:
    """The mail's size against the smarthost's limit, as the agent told of the failure reads it."""
    stated = f"at most {limit} bytes" if limit else "a smaller mail (it announces no limit)"
    return f"the mail is {size} bytes, and the smarthost takes {stated}: fewer or smaller files may go"


def _says_too_big(code: int, reply: str) -> bool:
    """A refusal for the mail's size: 552 to its end (RFC 5321 section 4.2.2) or status X.3.4 (RFC 3463)."""
    return code == 552 or re.match(r"\d{3}[ -][45]\.3\.4\b", reply) is not None


def _above_size(client: smtplib.SMTP, raw: bytes) -> SendResult | None:
    """Failed for good, before MAIL, when the mail exceeds the smarthost's announced SIZE; else None.

    RFC 1870 section 6: a client should not send a mail larger than the
    server's announced limit; it would be uploaded in full to be refused.
    """
    limit = _size_limit(client)
    if limit is None or len(raw) <= limit:
        return None
    return SendResult(FAILED, f"not sent: {_size_words(len(raw), limit)} (its SIZE, RFC 1870)", mail_only=True)


def _refused_recipient(code: int, text: str) -> SendResult:
    """The answer to a refused RCPT: about this recipient alone unless the server is closing (421)."""
    result = _classify(code, text)
    if code == 552:
        # RFC 5321 section 4.5.3.1.10: a 552 to RCPT (too many recipients, a full mailbox) is to be
        # treated as temporary, as Postfix does; the mail waits and is tried again.
        result = SendResult(RETRY, result.reply)
    # A refused RCPT ends this mail's transaction, not the session (RFC 5321 section 4.1.1.5: the next
    # use sends RSET); a 421 says the server closes the connection (RFC 5321 section 3.8).
    return SendResult(result.outcome, result.reply, mail_only=code != 421)


def _not_an_address(recipient: str) -> SendResult | None:
    """Failed for good, before any connection, when the recipient is no address (local@domain); else None.

    Every RCPT names an address (RFC 5321 section 4.1.2). A smarthost given
    `RCPT TO:<john smith>` may take it and add its own domain (Postfix's
    append_at_myorigin), delivering the mail to a stranger's mailbox and
    logging it as sent. No outbox row should hold one (a ticket whose first
    mail named no address has no requester address, ticketd.domain.requester);
    this guard stops any that does, whatever queued it.
    """
    if is_address(recipient):
        return None
    return SendResult(FAILED, f"not sent: {recipient!r} is not an email address (local@domain), so no "
                              "mail server can deliver it; the ticket has no address to answer there")


def send_raw(settings: OutboundSettings, mail_from: str, recipient: str, raw: bytes) -> SendResult:
    """One SMTP transaction for one recipient; never raises for network trouble."""
    if (refused := _not_an_address(recipient)) is not None:
        return refused
    if (held := _held(settings)) is not None:
        return held
    kept: _Kept | None = None
    try:
        try:
            kept = _session(settings)
        except NoTls as exc:
            return _tls_failed(settings, exc)
        except smtplib.SMTPResponseException as exc:
            # Refused at the greeting, STARTTLS or AUTH (a wrong password, 535):
            # nothing about this mail, so it is not failed for good; it is
            # retried with backoff until the admin fixes the smarthost setup.
            return SendResult(RETRY, f"{exc.smtp_code} {_reply_text(exc)}".strip())
        _tls_works(settings)
        need = smtputf8_need(mail_from, recipient, raw)
        if need is not None and not kept.client.has_extn("smtputf8"):
            # RFC 6531 section 3.2: such a mail must not go to a server without
            # the extension, and a UTF-8 local part has no ASCII form to
            # downgrade to; waiting will not change the smarthost. Nothing of
            # the mail was sent, so the connection stays good for the next one.
            kept.idle_since = time.monotonic()
            _kept.session, kept = kept, None
            return SendResult(FAILED, f"the smarthost does not offer SMTPUTF8 (RFC 6531), needed for {need}")
        result = _above_size(kept.client, raw)
        if result is None:
            result = _transaction(kept.client, mail_from, recipient, raw, ["SMTPUTF8"] if need else [])
            _answered(settings)
        # Kept after a 250, a refusal of the recipient alone, or a mail too big to start; after any
        # other refusal the server may be closing: start afresh.
        if result.outcome == SENT or result.mail_only:
            kept.idle_since, kept.mails = time.monotonic(), kept.mails + 1
            _kept.session, kept = kept, None
        return result
    except smtplib.SMTPResponseException as exc:      # e.g. a 5xx to DATA
        _answered(settings)
        return _classify(exc.smtp_code, _reply_text(exc))
    except ssl.SSLError as exc:
        # An unverifiable certificate is a subclass of ValueError too; it is
        # the smarthost's to fix, and the mail waits for it.
        return SendResult(RETRY, f"{type(exc).__name__}: {exc}")
    except (UnicodeError, ValueError) as exc:
        # e.g. an address smtplib cannot write even with SMTPUTF8: retrying will not help.
        return SendResult(FAILED, f"{type(exc).__name__}: {exc}")
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
        # Refused, timed out, dropped, TLS trouble: the mail is still ours to retry. A timeout, from the
        # greeting to the final dot, holds the sends to the smarthost (see HOLD_TIMEOUTS).
        said_before = _timed_out(exc) and not _hold(settings, exc)
        return SendResult(RETRY, f"{type(exc).__name__}: {exc}", outage_said=said_before)
    finally:
        if kept is not None:
            _close(kept.client)
