"""A help desk on real parts for conversation tests: our SMTP receiver, the pipeline, the outbox, a sink.

Mail goes in through ingest.smtp.Receiver with smtplib, is processed by
ticketd.pipeline.drain, and what ticketd decides to send is delivered by
outbound.delivery to an aiosmtpd sink, where a test reads it like a person's
mailbox and replies to it (Reply-To, In-Reply-To) like a mail client would.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import itertools
import smtplib
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import select

from ingest.match import reply_address
from ingest.smtp import Receiver
from outbound.delivery import deliver
from tests.conftest import free_port
from tests.sink import Sink
from ticketd.assignment import assign
from ticketd.clock import utcnow
from ticketd.pipeline import drain
from ticketd.store.tables import events, messages, outbox, ratings, reactions, tickets, timers

_ids = itertools.count(1)


def build_mail(sender: str, body: str, *, to: str = "support@example.com", subject: str = "Printer on fire",
               name: str | None = None, cc: str | None = None, in_reply_to: str | None = None,
               html: str | None = None, **headers) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"{name or sender.split('@')[0].title()} <{sender}>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<m{next(_ids)}.{id(msg)}@client.example.org>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


class Desk:
    def __init__(self, app, receiver: Receiver, sink: Sink) -> None:
        self.app, self.receiver, self.sink = app, receiver, sink
        self.delivered = 0

    # -- mail in
    def send(self, msg: EmailMessage, envelope_to: list[str] | None = None) -> EmailMessage:
        # Our MX only gets our own recipients; a Cc'd colleague's mail goes to their MX.
        envelope_to = envelope_to or [a for _, a in email.utils.getaddresses([str(msg["To"])])]
        with smtplib.SMTP("127.0.0.1", self.receiver.port, timeout=10) as client:
            refused = client.send_message(msg, to_addrs=envelope_to)
        assert refused == {}
        assert drain(self.app) == 1
        self.flush()
        return msg

    def send_raw(self, raw: bytes, mail_from: str = "") -> None:
        """Hand bytes as they are to the support address, as an MTA relays a report or a bounce."""
        with smtplib.SMTP("127.0.0.1", self.receiver.port, timeout=10) as client:
            client.sendmail(mail_from, ["support@example.com"], raw)
        assert drain(self.app) == 1
        self.flush()

    def reply_to(self, received: EmailMessage, sender: str, body: str, **kw) -> EmailMessage:
        """Answer a delivered mail the way a mail client does: to Reply-To, threaded."""
        target = str(received["Reply-To"] or received["From"])
        subject = "Re: " + str(received["Subject"])
        return self.send(build_mail(sender, body, to=target, subject=subject,
                                    in_reply_to=str(received["Message-ID"]), **kw))

    def agent_address(self, ticket_id: int, agent: str) -> str:
        return reply_address(self.app.signer, self.app.settings.support_address, ticket_id, agent)

    def assign(self, ticket_id: int) -> str | None:
        who = assign(self.app, ticket_id)   # what the assign_ticket worker runs
        self.flush()
        return who

    def open_assigned(self, customer: str, body: str, agent: str, **mail) -> int:
        """A new ticket from `customer`'s mail (`mail`: build_mail's keywords), which round robin gives to
        `agent` (asserted); its id."""
        self.send(build_mail(customer, body, **mail))
        ticket_id = self.ticket()["id"]
        assert self.assign(ticket_id) == agent
        return ticket_id

    # -- mail out
    def flush(self) -> None:
        with self.app.engine.connect() as conn:
            pending = conn.execute(select(outbox.c.id).where(outbox.c.state == "pending")
                                   .order_by(outbox.c.id)).scalars().all()
        for outbox_id in pending:   # a job may send rows behind its own: theirs then find nothing to do
            assert deliver(self.app, outbox_id) in ("sent", None)
        with self.app.engine.connect() as conn:
            states = conn.execute(select(outbox.c.state).where(outbox.c.id.in_(pending))).scalars().all()
        assert set(states) <= {"sent"}, states
        self.delivered += len(pending)
        self.sink.wait_for(self.delivered, timeout=10)

    def inbox(self, address: str) -> list[EmailMessage]:
        """Every mail delivered to one address, oldest first."""
        return [email.message_from_bytes(m.raw, policy=email.policy.default)
                for m in self.sink.messages if address in m.rcpt_tos]

    def last(self, address: str) -> EmailMessage:
        mails = self.inbox(address)
        assert mails, f"nothing was delivered to {address}"
        return mails[-1]

    def rows(self, table=outbox, **where) -> list[dict]:
        stmt = select(table).order_by(*table.primary_key)
        for key, value in where.items():
            stmt = stmt.where(table.c[key] == value)
        with self.app.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def ticket(self, ticket_id: int | None = None) -> dict:
        rows = self.rows(tickets) if ticket_id is None else self.rows(tickets, id=ticket_id)
        return rows[-1]

    def events(self, ticket_id: int, kind: str | None = None) -> list[dict]:
        found = self.rows(events, ticket_id=ticket_id)
        return [e for e in found if kind is None or e["kind"] == kind]

    def messages(self, ticket_id: int) -> list[dict]:
        return self.rows(messages, ticket_id=ticket_id)

    def message(self, message_id: str) -> dict:
        """The one stored message with this Message-ID."""
        [row] = [m for m in self.rows(messages) if m["message_id"] == message_id]
        return row

    def ratings(self, ticket_id: int) -> list[dict]:
        return self.rows(ratings, ticket_id=ticket_id)

    def reactions(self) -> list[dict]:
        return self.rows(reactions)


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def all_text(msg: EmailMessage) -> str:
    """Everything a recipient can read: headers, every part."""
    return msg.as_string()


def make_due(app, ticket_id: int, kind: str | None = None) -> None:
    """Move the ticket's armed timers (of `kind` only, if given) to one second ago, as if their time had passed."""
    armed = [timers.c.ticket_id == ticket_id, timers.c.state == "armed"]
    if kind is not None:
        armed.append(timers.c.kind == kind)
    with app.engine.begin() as conn:
        conn.execute(timers.update().where(*armed).values(due_at=utcnow() - timedelta(seconds=1)))


def open_desk(make_app, db_url: str, *, outbound: str = "", **kw):
    """Start receiver and sink; yields a Desk; stops both. `outbound`: more `outbound:` settings lines."""
    sink = Sink(free_port()).start()
    if outbound:
        kw["extra"] = kw.get("extra", "") + f"outbound:\n  host: 127.0.0.1\n  port: {sink.port}\n{outbound}"
    app = make_app(db_url, outbound_port=sink.port, **kw)
    receiver = Receiver(app)
    receiver.start()
    try:
        yield Desk(app, receiver, sink)
    finally:
        receiver.stop()
        sink.stop()
