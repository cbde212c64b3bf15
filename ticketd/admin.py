"""Ticket changes an admin makes from the command line (assign, close, follow, unfollow): events, mail queued."""

from __future__ import annotations

import logging

from outbound.outbox import queue_notices
from ticketd.app import App
from ticketd.assignment import assign_in_tx
from ticketd.clock import utcnow
from ticketd.customer_mail import add_followers
from ticketd.domain.commands import assign_target, closed_waits_for_nobody
from ticketd.domain.following import already_on_ticket, follow_refusal
from ticketd.domain.notices import Notice
from ticketd.domain.statuses import Status
from ticketd.store import tickets as store
from ticketd.store.db import admin_transaction
from ticketd.ticket_changes import customers_of, is_ours, set_status

log = logging.getLogger("ticketd.admin")

# Who did it, in the ticket's history (PRODUCT.md: every change says who).
ACTOR = "admin:cli"


class AdminRefused(Exception):
    """The change cannot be made; the message says why and the ticket is as it was."""


def _open_ticket(conn, ticket_id: int) -> dict:
    ticket = store.lock_ticket(conn, ticket_id)
    if ticket is None:
        raise AdminRefused(f"no ticket {ticket_id}")
    if ticket["merged_into"] is not None:
        raise AdminRefused(f"ticket [#{ticket_id}] was merged into [#{ticket['merged_into']}]: change that one")
    return ticket


def assign(app: App, ticket_id: int, target: str) -> tuple[str | None, list[int]]:
    """Give the ticket to an agent (even an away one) or to a group by its strategy; (assignee, outbox ids).

    As `#assign` does (ticketd.assignment.assign_in_tx): the agent gets the
    assignment notice; a group with nobody available leaves the ticket
    waiting there.
    """
    rules = app.rules
    # An address, a group, or an agent's full name from rules.yaml, as `#assign` reads them.
    resolved, wrong = assign_target(target, [a.email for a in rules.agents], list(rules.groups),
                                    {a.email: a.name for a in rules.agents})
    if resolved is None and "@" not in target:   # an address: assign_in_tx says what it is not
        raise AdminRefused(wrong.rstrip("."))
    resolved = resolved or target

    def work(conn) -> tuple[str | None, list[int]]:
        ticket = _open_ticket(conn, ticket_id)
        if ticket["status"] == Status.CLOSED.value:
            raise AdminRefused(f"{closed_waits_for_nobody(ticket_id)}; an agent's #status open reopens it, "
                               "to be assigned then")
        now = utcnow()
        try:
            notices = assign_in_tx(conn, app, ticket_id, resolved, now, ACTOR)
        except ValueError as exc:
            raise AdminRefused(str(exc)) from None
        return store.get_ticket(conn, ticket_id)["assignee"], queue_notices(conn, app, notices, now)

    assignee, outbox_ids = admin_transaction(app.engine, work)
    log.info("ticket %s assigned by %s to %s", ticket_id, ACTOR, assignee or f"nobody yet ({resolved})")
    return assignee, outbox_ids


def _address_as_written(address: str) -> str:
    return address.strip().strip("<>").removeprefix("mailto:").lower()


def follow(app: App, ticket_id: int, address: str) -> str:
    """Make someone a follower of the ticket, as an agent's `#follow` does: they get its public replies
    from now on and may write to it (a customer's second address); the address as added."""
    address = _address_as_written(address)
    refused = follow_refusal(address, agent=app.rules.agent(address) is not None, ours=is_ours(app, address))
    if refused:
        raise AdminRefused(refused)

    def work(conn) -> None:
        _open_ticket(conn, ticket_id)
        if (on_it := already_on_ticket(address, store.participant_role(conn, ticket_id, address))) is not None:
            raise AdminRefused(f"{on_it} ([#{ticket_id}])")
        add_followers(conn, ticket_id, [(address, None)], utcnow(), actor=ACTOR,
                      reason=f"`ticketd tickets follow` by {ACTOR}", row_id=None)

    admin_transaction(app.engine, work)
    log.info("ticket %s: %s follows it (%s)", ticket_id, address, ACTOR)
    return address


def unfollow(app: App, ticket_id: int, address: str) -> str:
    """Take a follower off the ticket, as an agent's `#unfollow` does: they get its public replies no more;
    the address as taken off."""
    address = _address_as_written(address)

    def work(conn) -> None:
        ticket = _open_ticket(conn, ticket_id)
        if not store.remove_follower(conn, ticket_id, address):
            followers = store.followers_of(conn, ticket_id)
            why = ("is its requester, who always gets its replies" if address == ticket["requester"].lower()
                   else "is not following it")
            raise AdminRefused(f"{address} {why} (followers of [#{ticket_id}]: {', '.join(followers) or 'none'})")
        store.add_event(conn, ticket_id, utcnow(), ACTOR, "follower_removed", from_value=address,
                        reason=f"`ticketd tickets unfollow` by {ACTOR}")

    admin_transaction(app.engine, work)
    log.info("ticket %s: %s no longer follows it (%s)", ticket_id, address, ACTOR)
    return address


def close(app: App, ticket_id: int, reason: str | None, *, tell_customer: bool = True) -> list[int]:
    """Close the ticket as an agent's `#close` does, logged as the admin's; the outbox ids.

    The requester gets the closing mail with its rating request unless
    `tell_customer` is False (a ticket opened by mistake, a test).
    """
    def work(conn) -> list[int]:
        ticket = _open_ticket(conn, ticket_id)
        if ticket["status"] == Status.CLOSED.value:
            raise AdminRefused(f"ticket [#{ticket_id}] is already closed")
        now = utcnow()
        why = "closed by `ticketd tickets close`" + (f" ({reason})" if reason else "")
        set_status(conn, app, ticket, Status.CLOSED, now, actor=ACTOR, kind="closed_by_admin",
                   reason=why + ("" if tell_customer else "; the customer was not told"), row_id=None)
        notices = []
        if tell_customer and ticket["requester"] in customers_of(conn, app, ticket_id):
            notices.append(Notice(template="requester/ticket_closed", recipient=ticket["requester"],
                                  ticket_id=ticket_id, context={"reason": reason or "closed by the support team",
                                                                "closed_by": "admin"}, by_person=True))
        return queue_notices(conn, app, notices, now)

    outbox_ids = admin_transaction(app.engine, work)
    log.info("ticket %s closed by %s", ticket_id, ACTOR)
    return outbox_ids
