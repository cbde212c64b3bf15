"""Turn notices into outbox rows inside the caller's transaction (the transactional outbox).

The bytes, and so the Message-ID, are fixed here: a retry sends the same
mail. A template that fails raises, and the whole transaction rolls back:
never a half-sent mail.
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.generator import NLCRE, BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from io import BytesIO
from typing import TYPE_CHECKING

from ingest.match import desk_address, new_message_id, reaction_address, reply_address
from outbound.attachments import Listed, choose, mixed_boundary, placeholder_part
from outbound.render import Renderer
from outbound.send import header_address
from ticketd.app import App
from ticketd.domain.loops import auto_generated_reason, cap_mailbox, is_our_address, mailbox_spellings
from ticketd.domain.notices import AUTO_REPLIED, Notice
from ticketd.domain.private_addresses import is_private_file
from ticketd.domain.tags import tagged_subject
from ticketd.store import tickets as store
from ticketd.store.outbox import Thread, insert_outbox_row, notice_history, sent_of_template, ticket_thread
from ticketd.store.read_models import attachment_rows, sender_name

if TYPE_CHECKING:
    from sqlalchemy import Connection

ACK_TEMPLATE = "requester/ticket_opened"
REACTION_TEMPLATES = ("requester/agent_reply", "requester/solution_proposed")
AUTO_RESPONSE_SUPPRESS = "DR, RN, NRN, OOF, AutoReply"   # every automatic answer but the non-delivery report

_renderers: dict[str, Renderer] = {}


class _WirePolicy(Compat32):
    """compat32 with CRLF line ends; a header line that already fits is written as it is.

    compat32 folds every header through `email.header.Header`, which cost more
    than the rest of composing an acknowledgement; for a printable ASCII value
    whose line fits in `max_line_length` (78, RFC 5322 section 2.1.1) Header
    gives the value back unchanged (tests/test_outbound_compose.py holds the
    two equal), so only the others go through it.
    """

    def fold_binary(self, name: str, value) -> bytes:
        if isinstance(value, str) and value.isascii() and value.isprintable() and (
                len(name) + 2 + len(value) <= self.max_line_length):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


SMTP_COMPAT = _WirePolicy(linesep="\r\n")


def renderer_for(app: App) -> Renderer:
    key = str(app.settings.templates_dir)
    if key not in _renderers:
        _renderers[key] = Renderer(app.settings.templates_dir)
    return _renderers[key]


# Line breaks of every kind (controls, U+2028, U+2029) and lone surrogates, which no charset encodes.
_BREAKING = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Bidirectional embeddings, overrides and isolates (Unicode UAX #9) turn text round for display
# ("invoice \u202efdp.exe" shows as "invoice exe.pdf"); ingest drops them too (ingest/headers.py).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(value: str) -> str:
    """`value` as one header line's text, with runs of white space as one space.

    Header injection: CR/LF (and other controls) never reach a header line
    (RFC 5322 section 2.2: a header is one logical line). Other format
    characters are the customer's text and stay: a Persian word's zero width
    non-joiner, an emoji's joiners, a flag's tag characters, right-to-left
    marks; as are characters newer than our Unicode tables. Non-ASCII text
    goes out RFC 2047-encoded, where none of them can break the line.
    """
    if value.isascii() and value.isprintable():   # no control, break or bidi character: words as they are
        return " ".join(value.split())
    kept = (" " if unicodedata.category(ch) in _BREAKING else ch for ch in value if ch not in _BIDI_CONTROLS)
    return " ".join("".join(kept).split())


# Longer than this, a word cannot be folded onto a line of its own within
# 78 characters: such text goes out as encoded words, which may be split.
_FOLDABLE_WORD = 70


def _header_text(name: str, value: str) -> str | Header:
    """A header value, RFC 2047-encoded when it is not plain ASCII or has a word too long to fold.

    A Header folds when the mail is written, counting the field name, so
    every encoded word stays within 75 characters and every line within 78
    (RFC 2047 section 2, RFC 5322 section 2.1.1) however long the text.
    Plain ASCII folds only between words: a pasted 1 200-character URL in a
    subject made a line longer than the 998 RFC 5322 section 2.1.1 allows,
    and smarthosts refused every mail of that ticket.

    Text holding "=?" is encoded too: written as it is, a reader takes a
    customer's literal "=?utf-8?q?=0D=0ABcc:...?=" (double-encoded, so
    ingest's one decoding left it) for an encoded word (RFC 2047 section 6.1)
    and shows the line breaks and direction overrides _clean keeps out.
    Encoded, it reads back as the text it is, as the email package's own
    folding does (email._header_value_parser, RFC 2047 section 5 (1)).
    """
    if value.isascii() and "=?" not in value and all(len(word) <= _FOLDABLE_WORD for word in value.split()):
        return value
    return Header(value, "utf-8", header_name=name)


# RFC 5322 sets no length for a msg-id, but a header line may not exceed 998
# characters and an id cannot be folded; nor may it hold anything but ASCII
# (RFC 5322 section 3.6.4). Such an id of a customer's mail is left out of
# what we send rather than break the mail.
_MAX_MESSAGE_ID = 250


def _sendable_ids(message_ids: list[str]) -> list[str]:
    ids = [_clean(m) for m in message_ids if m]
    return [m for m in ids if m and len(m) <= _MAX_MESSAGE_ID and m.isascii() and " " not in m]


def _mailbox(name: str, display: str, address: str) -> str | Header:
    """`Display <address>`; a non-ASCII display name as encoded words (RFC 2047 section 5 (3))."""
    if display.isascii():
        return email.utils.formataddr((display, address))
    mailbox = Header(display, "utf-8", header_name=name)
    mailbox.append(f"<{address}>", "us-ascii")
    return mailbox


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """UTF-8 text as quoted-printable: readable at the source, 7-bit on the wire.

    Encoded by binascii (C) rather than the email package's Python
    encoder: 0.33 -> 0.07 ms for 8 kB of German text, which notices quoting
    a customer's or an agent's text carry twice (plain and HTML). Lines
    stay within 76 characters and trailing blanks are encoded (RFC 2045
    section 6.7, rules 3 and 5).
    """
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii"))
    return part


def _boundary(message_id: str) -> str:
    # "=_" never occurs in quoted-printable text (RFC 2045 section 6.7: "="
    # starts "=XX" or ends a line), so this cannot collide with the parts and
    # the generator need not search them for a free one (RFC 2046 5.1.1).
    return "=_" + hashlib.blake2b(message_id.encode(), digest_size=12).hexdigest()


def known_name(app: App, recipient: str, ticket: dict | None) -> str:
    """The recipient's name without asking the store: an agent's (rules.yaml), the requester's, else ""."""
    agent = app.rules.agent(recipient)
    if agent is not None:
        return agent.name or ""
    if ticket and (ticket.get("requester") or "").lower() == recipient.strip().lower():
        return ticket.get("requester_name") or ""
    return ""


def _recipient_name(conn: Connection, app: App, notice: Notice, ticket: dict | None) -> str:
    """Whom this copy greets: known_name, else a follower's name on the ticket (from the Cc that brought
    them, or their own mail to it), else "" for a neutral greeting."""
    name = known_name(app, notice.recipient, ticket)
    if name or not ticket:
        return name
    recipient = notice.recipient.strip().lower()
    named = next((p["name"] for p in store.participants_of(conn, ticket["id"]) if p["email"] == recipient), None)
    return named or sender_name(conn, ticket["id"], recipient) or ""


def compose(app: App, notice: Notice, ticket: dict | None, references: list[str], message_id: str,
            now: datetime, files: list[Listed] | tuple[Listed, ...] = (), recipient_name: str | None = None) -> Message:
    """The whole mail for one notice; `files` become empty parts that delivery fills (outbound.attachments).

    Built with the compat32 classes and explicit RFC 2047 encoding: the same
    bytes as the `email.policy` header registry would give, at a fraction of
    the cost on the processing path (bench/README.md).
    """
    settings = app.settings
    context = {
        "ticket": ticket or {},
        "tag": f"[#{ticket['id']}]" if ticket else "",
        "support_address": settings.support_address,
        "recipient": notice.recipient,
        # A notice to the requester goes to the followers too: each copy greets its own reader, never
        # the requester by name in a follower's mail (templates/README.md).
        "recipient_name": known_name(app, notice.recipient, ticket) if recipient_name is None else recipient_name,
        "timezone": app.rules.zone_of(notice.recipient),   # for the `when` filter: theirs if an agent's
        **notice.context,
    }
    rendered = renderer_for(app).render(notice.template, context)
    if rendered.html:
        msg: Message = MIMEMultipart("alternative", boundary=_boundary(message_id))
        msg.attach(_text_part(rendered.text, "plain"))
        msg.attach(_text_part(rendered.html, "html"))
    else:
        msg = _text_part(rendered.text, "plain")
    if files:
        body, msg = msg, MIMEMultipart("mixed", boundary=mixed_boundary(message_id))
        msg.attach(body)
        for listed in files:
            msg.attach(placeholder_part(listed))
    display = _clean(notice.from_name or "Support")
    msg["From"] = _mailbox("From", display, settings.support_address)
    msg["To"] = header_address(_clean(notice.recipient))
    subject = _clean(rendered.subject)
    msg["Subject"] = _header_text("Subject", tagged_subject(ticket["id"], subject) if ticket else subject)
    msg["Date"] = email.utils.format_datetime(now.replace(tzinfo=UTC))
    msg["Message-ID"] = f"<{message_id}>"
    if ticket:
        msg["Reply-To"] = reply_address(app.signer, settings.support_address, ticket["id"], notice.agent_reply_to,
                                        note=notice.reply_as_note)
    elif notice.agent_reply_to:
        # A mail about no one ticket (the daily summary, a desk reply): a
        # reply to the support address would open a ticket from the agent;
        # it goes to their desk address (#away, #back), and the per-ticket
        # addresses in the mail act on tickets.
        msg["Reply-To"] = desk_address(app.signer, settings.support_address, notice.agent_reply_to)
    for in_reply_to in _sendable_ids([notice.in_reply_to or ""]):
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references := _sendable_ids(references):
        msg["References"] = " ".join(f"<{r}>" for r in references)
    # PRODUCT.md "Loops and robots": everything ticketd sends is marked. A
    # relayed agent reply (auto_submitted None: a person's words, outside the
    # per-recipient cap) is still a mail ticketd generated in direct response
    # to the agent's: auto-replied (RFC 3834 section 5).
    msg["Auto-Submitted"] = notice.auto_submitted or AUTO_REPLIED
    # Exchange and Outlook send no out-of-office or auto-reply, delivery or read receipt back; not "All",
    # which asks them to withhold non-delivery reports too (MS-OXCMAIL section 2.2.3.2.14), and a
    # bounce is how ticketd learns that a mail never arrived (outbound/bounces.py).
    msg["X-Auto-Response-Suppress"] = AUTO_RESPONSE_SUPPRESS
    if ticket:
        msg["X-Ticketd-Ticket"] = str(ticket["id"])
    # MIME-Version must lead the MIME headers; the classes add it first.
    return msg


class _WireGenerator(BytesGenerator):
    """BytesGenerator writing a text part's body in one piece instead of line by line.

    The stdlib writes every line and every line end on its own: for a
    notice quoting a conversation that was half a million calls per
    thousand mails, and most of the cost of composing it. One
    substitution gives the same bytes (tests/test_outbound_compose.py).
    """

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(NLCRE.sub(self._NL, lines))


def as_wire_bytes(msg: Message) -> bytes:
    """CRLF line ends, as SMTP carries them (RFC 5321 section 2.3.8).

    The mails compose builds (text and file parts, multiparts with their
    boundary set, all ASCII) are written by `_plain_wire`, the generator's
    own steps without its machinery (a clone, a buffer and a dispatch per
    part: half the cost of an acknowledgement's bytes); any other tree goes
    through the generator. The bytes are the same (tests/test_outbound_wire_bytes.py).
    """
    out: list[bytes] = []
    if _plain_wire(msg, out):
        return b"".join(out)
    out_file = BytesIO()
    _WireGenerator(out_file, mangle_from_=False, policy=SMTP_COMPAT).flatten(msg, unixfrom=False)
    return out_file.getvalue()


def _ascii_or_none(text: object) -> bool:
    return text is None or (isinstance(text, str) and text.isascii())


def _plain_wire(msg: Message, out: list[bytes]) -> bool:
    """BytesGenerator's bytes for `msg` (email.generator: _write, _handle_text, _handle_multipart), with
    SMTP_COMPAT's header lines and _WireGenerator's body lines; False, `out` half written, for a tree the
    generator writes with more: a message/* or multipart/signed part, a boundary to invent, a non-ASCII
    body, preamble or epilogue (surrogates to re-encode)."""
    payload = msg._payload
    maintype = msg.get_content_maintype()
    if maintype == "message" or msg.get_default_type() != "text/plain":
        return False
    if maintype != "multipart":
        if not _ascii_or_none(payload):
            return False
        _header_lines(msg, out)
        if payload:
            out.append(NLCRE.sub("\r\n", payload).encode("ascii"))
        return True
    boundary = msg.get_boundary()
    if (msg.get_content_subtype() == "signed" or not isinstance(payload, list) or boundary is None
            or not boundary.isascii() or not _ascii_or_none(msg.preamble) or not _ascii_or_none(msg.epilogue)):
        return False
    _header_lines(msg, out)
    if msg.preamble is not None:
        out.append(NLCRE.sub("\r\n", msg.preamble).encode("ascii") + b"\r\n")
    delimiter = f"--{boundary}\r\n".encode("ascii")
    for index, part in enumerate(payload):
        out.append(delimiter if index == 0 else b"\r\n" + delimiter)
        if not _plain_wire(part, out):
            return False
    if not payload:
        out.append(delimiter)
    out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    if msg.epilogue:
        out.append(NLCRE.sub("\r\n", msg.epilogue).encode("ascii"))
    return True


# Pythons from 3.11.10 and 3.12.5 on check every folded header line in the generator (CVE-2024-6923).
_VERIFY_HEADERS = getattr(SMTP_COMPAT, "verify_generated_headers", False)
_LINE_BREAK_WITHOUT_FWSP = re.compile(rb"\r\n[^ \t]|\r[^ \n\t]|\n[^ \t]")


def _header_lines(msg: Message, out: list[bytes]) -> None:
    """The header block and the blank line that ends it, as BytesGenerator._write_headers writes them."""
    for name, value in msg.raw_items():
        folded = SMTP_COMPAT.fold_binary(name, value)
        if _VERIFY_HEADERS and (not folded.endswith(b"\r\n")
                                or _LINE_BREAK_WITHOUT_FWSP.search(folded.removesuffix(b"\r\n"))):
            from email.errors import HeaderWriteError
            raise HeaderWriteError(f"folded header contains newline: {folded!r}")
        out.append(folded)
    out.append(b"\r\n")


def suppression_reason(conn: Connection, app: App, notice: Notice, now: datetime) -> str | None:
    """Why this notice must not be sent (loops and rate limits), or None."""
    recipient = notice.recipient.strip().lower()
    if is_our_address(recipient, app.settings.support_address, app.settings.smtp.extra_addresses):
        return "recipient is our own address"
    history = notice_history(conn, ticket_id=notice.ticket_id, recipient=recipient,
                             addresses=_spellings(notice), template=notice.template,
                             since=now - timedelta(hours=1), mailbox=_subaddressed(recipient))
    robot = auto_generated_reason({}, None, recipient)
    if robot:
        return f"recipient is a robot ({robot})"
    if notice.ticket_id and notice.template.startswith("agent/") and app.rules.agent(recipient) is None:
        # An agent removed from rules.yaml keeps their closed tickets in the history; the ticket's
        # news (a bounce, a reaction, a customer's words) goes to the team, not to their mailbox.
        return "recipient is no agent in rules.yaml"
    if notice.auto_submitted is None:
        # A human agent's reply is not automatic mail: no cap, and it is
        # tried even to an address that bounced (a full mailbox empties; a
        # second bounce tells the agent again, see outbound.bounces).
        return None
    if notice.ticket_id and history.bounced:
        return "recipient address bounced"
    if notice.template == ACK_TEMPLATE and notice.ticket_id and history.template_sent:
        return "this ticket was already acknowledged"
    # Agents are exempt from the cap for their notifications, which are their work, but not for the answers
    # to their own mail (_agent_answer_limit). The cap stops mail loops
    # (PRODUCT.md "caps automatic mail per recipient"): a person's command is none, nor is a wait's
    # warning and closing mail, at most two per wait and answering no mail; without them the close
    # timer closed the ticket with the customer never warned nor told. A cap of 0 still sends nothing.
    limit = app.settings.auto_mails_per_recipient_per_hour
    if app.rules.agent(recipient) is None:
        exempt = notice.by_person or notice.lifecycle
        if history.recent_automatic >= limit and not (exempt and limit > 0):
            return (f"rate limit: {history.recent_automatic} automatic mails to {recipient} in the last hour "
                    f"(limit {limit})")
    elif notice.auto_submitted == AUTO_REPLIED and not notice.by_person:
        return _agent_answer_limit(conn, notice, recipient, limit, now)
    return None


def _spellings(notice: Notice) -> list[str]:
    """The spellings the outbox may hold the notice's recipient in: as given, in lower case, and with its
    domain in either IDNA form (one mailbox, RFC 5890), so that both count towards one cap."""
    return list({*mailbox_spellings(notice.recipient.strip().lower()), notice.recipient})


def _subaddressed(recipient: str) -> tuple[str, list[str]] | None:
    """The mailbox of a subaddress (RFC 5233), whose cap counts the mailbox and all its subaddresses, as its
    local part and its domain's spellings (either IDNA form); else None.

    Asked of a subaddress only, so the common recipient pays no second
    look-up: mail to cust+1@, cust+2@, … counts cust@'s and every
    subaddress's, while cust@ counts its own, at most the cap more an hour.
    """
    local, domain = cap_mailbox(recipient)
    if not domain or f"{local}@{domain}" == recipient:
        return None
    return local, [address.rpartition("@")[2] for address in mailbox_spellings(f"{local}@{domain}")]


def _agent_answer_limit(conn: Connection, notice: Notice, recipient: str, limit: int, now: datetime) -> str | None:
    """Why an automatic answer to an agent's own mail must not go: the cap, counted per kind of answer.

    An answer is what a forwarding rule or auto-responder of their mailbox
    answers again (RFC 3834 section 2: limit responses to one address in a
    period). Counted apart from their notifications, which are their work;
    at least one an hour, so a cap of 0 (for customers) leaves them told.
    Asked only here: answers to agents' mail are rare on the hot path.
    """
    limit = max(limit, 1)
    sent = sent_of_template(conn, _spellings(notice), notice.template, now - timedelta(hours=1))
    if sent >= limit:
        return f"rate limit: {sent} {notice.template} mails to {recipient} in the last hour (limit {limit})"
    return None


def _with_reaction_links(app: App, notice: Notice) -> Notice:
    # PRODUCT.md: each public agent reply carries signed like / dislike links.
    if notice.template not in REACTION_TEMPLATES or notice.message_row_id is None:
        return notice
    signer, support = app.signer, app.settings.support_address
    context = dict(notice.context)
    context["like_address"] = reaction_address(signer, support, notice.message_row_id, "like")
    context["dislike_address"] = reaction_address(signer, support, notice.message_row_id, "dislike")
    return replace(notice, context=context)


def _files_for(conn: Connection, app: App, notice: Notice) -> list[Listed]:
    """The files this notice mentions, those within the size limit marked attached; a customer's
    without what would show them an agent's own address (_for_customers)."""
    if not notice.attach_from:
        return []
    rows = attachment_rows(conn, list(notice.attach_from))
    listed = choose(rows, notice.attach_from, app.settings.outbound.max_attachment_bytes)
    return listed if notice.agent_reply_to else _for_customers(app, listed)


def _for_customers(app: App, files: list[Listed]) -> list[Listed]:
    """PRODUCT.md: customers never see agents' private addresses. An agent's contact card, which carries
    their address and phone, stays on the ticket, as do the signature of their signed mail with the
    certificate or key that names them and Outlook's winmail.dat of their whole mail, quotes and all; an
    address in a file's name reads as the support address, as in the reply's text
    (ticketd.domain.private_addresses)."""
    agents = [a.email for a in app.rules.agents]
    kept = []
    for listed in files:
        if is_private_file(listed.filename, listed.content_type):
            continue
        kept.append(replace(listed, filename=_withheld_name(listed.filename, agents,
                                                            app.settings.support_address)))
    return kept


def _withheld_name(filename: str, agents: list[str], instead: str) -> str:
    """A file's name with agents' addresses withheld wherever they stand in it.

    Not by words, as in text (withhold_addresses): in "notes-for-bob@example.com.pdf" the hyphen
    before and the extension after read as more of an address, so the address is found as written.
    """
    for address in sorted({a.lower() for a in agents if "@" in a}, key=len, reverse=True):
        if address != instead.lower():
            filename = re.sub(re.escape(address), instead, filename, flags=re.IGNORECASE)
    return filename


def _answering_people(notice: Notice, thread: Thread) -> Notice:
    """In reply to a person's mail, never a robot's: a bounce or auto-reply the ticket holds becomes
    the conversation's latest mail (what an agent's reply means to answer, ticketd/agent_mail.py)."""
    if notice.in_reply_to not in thread.robots:
        return notice
    return replace(notice, in_reply_to=thread.references[-1] if thread.references else None)


def queue_notices(conn: Connection, app: App, notices: list[Notice], now: datetime,
                  ticket_row: dict | None = None, *, ticket_rows: Sequence[dict] = ()) -> list[int]:
    """Insert one outbox row per notice; returns their ids for enqueueing after commit.

    A notice that loop protection or the rate limit stops becomes a
    'mail_suppressed' event on its ticket instead: never silently dropped.
    `ticket_row`: a ticket's row as this transaction holds it (Decision.ticket_row), used for the
    notices about that ticket instead of reading it; `ticket_rows`: several (an assignment batch).
    """
    held = {row["id"]: row for row in (*ticket_rows, *([ticket_row] if ticket_row is not None else []))}
    ids = []
    for notice in notices:
        reason = suppression_reason(conn, app, notice, now)
        if reason is not None:
            if notice.ticket_id:
                store.add_event(conn, notice.ticket_id, now, "system:loops", "mail_suppressed",
                                to_value=notice.recipient, reason=f"{notice.template}: {reason}")
            continue
        notice = _with_reaction_links(app, notice)
        files = _files_for(conn, app, notice)
        if files:
            notice = replace(notice, context={**notice.context, "attachments": [f.as_context() for f in files]})
        if notice.ticket_id in held:
            ticket = dict(held[notice.ticket_id])   # a copy, as a read gives
        else:
            ticket = store.get_ticket(conn, notice.ticket_id) if notice.ticket_id else None
        thread = ticket_thread(conn, ticket["id"]) if ticket else Thread([], frozenset())
        notice = _answering_people(notice, thread)
        message_id = new_message_id(app.signer, app.settings.support_domain, notice.ticket_id)
        msg = compose(app, notice, ticket, thread.references, message_id, now, [f for f in files if f.attached],
                      recipient_name=_recipient_name(conn, app, notice, ticket))
        ids.append(insert_outbox_row(
            conn, ticket_id=notice.ticket_id, message_row_id=notice.message_row_id, template=notice.template,
            recipient=notice.recipient, message_id=message_id, automatic=notice.auto_submitted is not None,
            raw=as_wire_bytes(msg), now=now,
        ))
    return ids
