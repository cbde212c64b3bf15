"""Link a delivery report to the outbox row it reports on, and mark the address bounced."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from outbound.dsn import read_report
from ticketd.store import tickets as store
from ticketd.store.bounces import latest_by_message_ids, latest_sent_to, mark_bounced

if TYPE_CHECKING:
    from sqlalchemy import Connection


def link_bounce(conn: Connection, raw: bytes, now: datetime) -> int | None:
    """If `raw` is a DSN about one of our outbox mails: record the bounce; the ticket id."""
    report = read_report(raw)
    if report is None:
        return None
    row = None
    if report.original_message_ids:
        row = latest_by_message_ids(conn, report.original_message_ids)
    if row is None and report.failed_recipients:
        # No original named: the latest mail we sent to a reported recipient.
        row = latest_sent_to(conn, report.failed_recipients)
    if row is None or row["ticket_id"] is None:
        return None
    recipients = set(report.failed_recipients) or {row["recipient"].lower()}
    for address in recipients:
        mark_bounced(conn, row["ticket_id"], address, now)
        store.add_event(conn, row["ticket_id"], now, "system:outbound", "bounced", to_value=address,
                        reason=" ".join(x for x in (report.status, report.diagnostic,
                                                     f"(report on <{row['message_id']}>)") if x))
    return row["ticket_id"]
