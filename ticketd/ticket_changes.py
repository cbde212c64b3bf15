"""Shared steps of a ticket change made by incoming mail: the decision, the stored message, status moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ticketd.app import App
from ticketd.domain.loops import is_our_address, own_address_reason
from ticketd.domain.notices import Notice
from ticketd.domain.statuses import Status
from ticketd.domain.timers import DATE_OF_STATUS, dates_left_behind
from ticketd.store import tickets as store
from ticketd.timers import on_date_change, on_status_change

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail


@dataclass
class Decision:
    """What a mail did to its ticket: the notices to send and the jobs to enqueue after commit."""

    ticket_id: int
    notices: list[Notice] = field(default_factory=list)
    jobs: list[tuple[str, tuple]] = field(default_factory=list)
    # The ticket's row as the transaction holds it, where the deciding code has it unchanged since it was
    # written (a new ticket's, from its INSERT): queue_notices need not read it again.
    ticket_row: dict | None = None


def is_ours(app: App, address: str) -> bool:
    """Whether an address is our own: the support address, its +tagged forms, or an extra address."""
    return is_our_address(address, app.settings.support_address, app.settings.smtp.extra_addresses)


def written_from_our_address(mail: IncomingMail) -> bool:
    """A person's mail From one of our addresses (the shared mailbox in webmail), not our own mail come back."""
    author = mail.parsed.author
    return bool(author) and mail.robot_reason == own_address_reason(author)


def mail_ref(mail: IncomingMail) -> str:
    """How history names the mail that caused an event."""
    mid = mail.parsed.message_id
    return f"mail <{mid}>" if mid else f"raw mail {mail.raw_id} (no Message-ID)"


def store_message(conn, app: App, mail: IncomingMail, ticket_id: int, now, *, author_role: str,
                  internal: bool = False, text: str | None = None) -> int:
    p = mail.parsed
    row_id = store.add_message(
        conn, ticket_id=ticket_id, raw_mail_id=mail.raw_id, direction="in", message_id=p.message_id,
        from_addr=p.from_addr, from_name=p.from_name, to_addrs=p.to, cc_addrs=p.cc, subject=p.subject,
        text=mail.text if text is None else text, full_text=p.text, html=mail.html, internal=internal,
        auto_generated=mail.robot_reason is not None, author_role=author_role,
        matched_by=mail.matched_by, created_at=now,
    )
    store.add_attachments(conn, row_id, mail.attachments)
    return row_id


def customers_of(conn, app: App, ticket_id: int, people: list[dict] | None = None) -> list[str]:
    """Requester and followers who get public replies (never our own addresses); `people` the
    ticket's participants when the caller has read them already.

    An agent who wrote to support is that ticket's customer and gets its
    public replies; an agent among the followers gets agent mail instead.
    An address that bounced is still listed: the mail to it is then
    suppressed with an event saying so, never left out without a trace.
    """
    return [p["email"] for p in (store.participants_of(conn, ticket_id) if people is None else people)
            if not is_ours(app, p["email"]) and (
                p["role"] == "requester" or p["role"] == "follower" and app.rules.agent(p["email"]) is None)]


_TIMED_FIELDS = tuple(DATE_OF_STATUS.values())


def set_status(conn, app: App, ticket: dict, to: Status, now, *, actor: str, kind: str, reason: str,
               row_id: int | None, **fields) -> bool:
    """Move the ticket to `to` with its history event and timers; False if it already was there.

    The wake-up or due date of a status it leaves is cleared (dates_left_behind).
    """
    if ticket["status"] == to.value and not fields:
        return False
    fields = {**dates_left_behind(ticket, to.value), **fields}
    if to == Status.CLOSED:
        fields.setdefault("closed_at", now)
    elif ticket["status"] == Status.CLOSED.value:
        fields.setdefault("closed_at", None)
    store.update_ticket(conn, ticket["id"], now, status=to.value, **fields)
    store.add_event(conn, ticket["id"], now, actor, kind, from_value=ticket["status"], to_value=to.value,
                    reason=reason, message_row_id=row_id)
    # A new wake-up or due date moves that date's timers even when the status
    # stays (a second #postpone on a postponed ticket moves its wake-up), and only those.
    retimed = any(ticket.get(key) != fields[key] for key in _TIMED_FIELDS if key in fields)
    if ticket["status"] != to.value:
        on_status_change(conn, app, ticket["id"], to.value, now)
    elif retimed:
        on_date_change(conn, app, ticket["id"], to.value, now)
    ticket.update(status=to.value, **fields)
    return True

