"""Link a delivery report to the ticket of the mail of ours it names, and mark a recipient it proves bounced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ingest.headers import ascii_domain
from ingest.match import our_message_ticket
from outbound.dsn import DeliveryReport, read_report
from outbound.plain_bounce import read_plain_bounce
from ticketd.domain.notices import Notice, delivery_failed_notice
from ticketd.store import tickets as store
from ticketd.store.bounces import mark_bounced, outbox_rows_by_message_ids
from ticketd.store.merge import final_ticket

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ticketd.app import App


@dataclass(frozen=True)
class Bounce:
    """One of our mails a delivery report proved undelivered."""
    ticket_id: int
    recipient: str
    template: str       # of the mail that bounced
    reason: str         # the report's status and diagnostic


@dataclass(frozen=True)
class Report:
    """A delivery report proven to be about a mail of ours."""
    ticket_id: int              # the ticket of that mail
    bounce: Bounce | None       # a failure of that mail's recipient, if it reports one


def link_report(conn: Connection, app: App, raw: bytes, now: datetime, envelope_from: str | None = None
                ) -> Report | None:
    """If `raw` is a delivery report proven to be about one of our mails: its ticket, and a bounce recorded if it
    proves one. `envelope_from`: the SMTP MAIL FROM, else Return-Path; None if unknown.

    Anyone can send a multipart/report (RFC 3464), and what it says is only
    its sender's claim. It is about our mail only when it names one of our
    signed Message-IDs (in the returned message or headers, or the report's
    In-Reply-To/References), since nobody who never received that mail can
    make one; such a report belongs to that mail's ticket whatever it says
    (a "delayed" notice too, which the returned headers alone name, or it
    would open a ticket of its own). It marks the mail's recipient bounced
    only when that recipient is one of its failed recipients. Any other
    report is an ordinary robot mail: it joins no ticket by being a report
    and marks nobody bounced. A report naming only an address would
    otherwise let anyone join, and silence, another customer's ticket
    (PRODUCT.md, Threading).

    qmail, Exim, older Postfix and others bounce in plain text, the
    returned mail's headers pasted below their words: from a mail system
    (outbound.plain_bounce), such a bounce is a report too, on the same
    proof. A person's mail pasting our headers (a forward) is not.
    """
    report = read_report(raw) or read_plain_bounce(raw, envelope_from)
    if report is None:
        return None
    domain = app.settings.support_domain
    signed = {m: t for m in report.original_message_ids if (t := our_message_ticket(app.signer, domain, m))}
    if not signed:
        return None
    bounce = _bounce(conn, report, signed, now)
    return Report(bounce.ticket_id if bounce else next(iter(signed.values())), bounce)


def _bounce(conn: Connection, report: DeliveryReport, signed: dict[str, int], now: datetime) -> Bounce | None:
    """The recipient of ours the report proves failed, marked bounced with an event; None if none."""
    if not report.failed_recipients:
        return None
    failed = {_same_mailbox(r) for r in report.failed_recipients}
    for row in outbox_rows_by_message_ids(conn, list(signed)):
        recipient = row["recipient"].strip().lower()
        if row["ticket_id"] != signed[row["message_id"].lower()] or _same_mailbox(recipient) not in failed:
            continue
        # One outbox row is one recipient: that address is all the report proves bounced.
        # On the ticket the mail's ticket was merged into, if it was: its people are there.
        ticket_id = final_ticket(conn, row["ticket_id"]) or row["ticket_id"]
        mark_bounced(conn, ticket_id, recipient, now)
        said = " ".join(x for x in (report.status, report.diagnostic) if x) or "a delivery report"
        store.add_event(conn, ticket_id, now, "system:outbound", "bounced", to_value=recipient,
                        reason=f"{said} (report on <{row['message_id']}>)")
        return Bounce(ticket_id, recipient, row["template"], said)
    return None


def _same_mailbox(address: str) -> str:
    """An address as a report and an outbox row are compared: lower case, its domain in A-labels.

    The smarthost was given the domain in A-labels (outbound.send), so a
    report names `kunde@xn--bcher-kva.example` (RFC 3464's rfc822 type) for
    the customer the ticket knows as `kunde@bücher.example`, and an RFC 6533
    report may name U-labels: the same mailbox (RFC 5890 section 2.3.2.1).
    """
    return ascii_domain(address.strip().lower()).lower()


def assignee_told(conn: Connection, bounce: Bounce, ticket_id: int) -> list[Notice]:
    """The assignee hears of a bounce as of any mail that failed for good (templates/README.md)."""
    ticket = store.get_ticket(conn, ticket_id)
    told = delivery_failed_notice(ticket["assignee"] if ticket else None, ticket_id, bounce.recipient,
                                  bounce.template, bounce.reason)
    return [told] if told is not None else []
