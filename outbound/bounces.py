"""Link a delivery report to the outbox mail it proves to be about, and mark that recipient bounced."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ingest.match import our_message_ticket
from outbound.dsn import read_report
from ticketd.store import tickets as store
from ticketd.store.bounces import mark_bounced, outbox_rows_by_message_ids
from ticketd.store.merge import final_ticket

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ticketd.app import App


def link_bounce(conn: Connection, app: App, raw: bytes, now: datetime) -> int | None:
    """If `raw` is a DSN proven to be about one of our outbox mails: record the bounce; the ticket id.

    Anyone can send a multipart/report (RFC 3464), and what it says is only
    its sender's claim. It is about our mail only when it names one of our
    signed Message-IDs (in the returned message or headers, or the report's
    In-Reply-To/References), since nobody who never received that mail can
    make one. The mail's recipient must also be one of the report's failed
    recipients. Any other report is an ordinary robot mail: it joins
    no ticket by being a report and marks nobody bounced. A report naming
    only an address would otherwise let anyone join, and silence, another
    customer's ticket (PRODUCT.md, Threading).
    """
    report = read_report(raw)
    if report is None:
        return None
    domain = app.settings.support_domain
    signed = {m: t for m in report.original_message_ids if (t := our_message_ticket(app.signer, domain, m))}
    for row in outbox_rows_by_message_ids(conn, list(signed)):
        recipient = row["recipient"].strip().lower()
        if row["ticket_id"] != signed[row["message_id"].lower()] or recipient not in report.failed_recipients:
            continue
        # One outbox row is one recipient: that address is all the report proves bounced.
        # On the ticket the mail's ticket was merged into, if it was: its people are there.
        ticket_id = final_ticket(conn, row["ticket_id"]) or row["ticket_id"]
        mark_bounced(conn, ticket_id, recipient, now)
        store.add_event(conn, ticket_id, now, "system:outbound", "bounced", to_value=recipient,
                        reason=" ".join(x for x in (report.status, report.diagnostic,
                                                     f"(report on <{row['message_id']}>)") if x))
        return ticket_id
    return None
