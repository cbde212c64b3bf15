"""A customer's reply set aside in quarantine: named on its ticket, told to the assignee, holding its timers.

The decision (PRODUCT.md "The lifecycle": waiting_customer warns, then
closes, when the customer is silent; "Commands": quarantine keeps mail that
could not be processed whole, to be re-driven). A customer whose answer
failed processing (the MIME limits, a parse error) has not been silent:
closing their ticket "with no answer" loses what they said, and nobody
would read it. So, at quarantine time and only then (no sweep parses
quarantined mail), the mail's head is read for the ticket it answers, by
PRODUCT.md's threading clues, and only from that ticket's requester or a
follower (a stranger naming the tag holds nothing). Then:
- the ticket's history records it, and its assignee is told, with the
  `ticketd quarantine retry` that re-drives it;
- the ticket's warn and close due since the wait began do not fire while
  the mail is quarantined and nobody dismissed it (ticketd.store.timers
  due_armed_kinds). A retry that processes it is the customer's reply,
  which moves the ticket as any does; a dismissal says it answers nothing,
  and the overdue warning goes out at the next sweep, giving its whole
  grace before the close (ticketd.timers._warn).
The respond clock is the desk's and runs on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from ingest.match import our_message_ticket, read_reply_addresses
from ticketd.app import App
from ticketd.domain.held_replies import ReplyClues, reply_clues
from ticketd.domain.notices import AUTO_GENERATED, Notice
from ticketd.store import tickets as store
from ticketd.store import timers as timer_rows
from ticketd.store.merge import final_ticket

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("ticketd.quarantine")

ACTOR = "system:intake"
_CUSTOMER_ROLES = ("requester", "follower")


def note_quarantined_reply(conn: Connection, app: App, raw_id: int, reason: str, now: datetime) -> list[Notice]:
    """Tie a mail just quarantined to the ticket its head answers, if its customer wrote it; the notices to send."""
    clues = reply_clues(*timer_rows.quarantined_head(conn, raw_id))
    ticket = _ticket_answered(conn, app, clues)
    if ticket is None:
        return []
    timer_rows.hold_for(conn, raw_id, ticket["id"])
    failed = (reason.strip().splitlines() or ["no reason given"])[0]
    said = (f"a mail from {clues.author} could not be processed and waits in quarantine ({failed}); "
            f"`ticketd quarantine retry {raw_id}` re-drives it once that is mended")
    store.add_event(conn, ticket["id"], now, ACTOR, "reply_quarantined", to_value=str(raw_id),
                    reason=f"{said}; until it is retried or dismissed, the reminder and auto-close wait")
    log.warning("raw mail %s quarantined is a reply of %s on ticket %s", raw_id, clues.author, ticket["id"])
    assignee = ticket["assignee"]
    if not assignee or app.rules.agent(assignee) is None:
        return []
    text = (f"[{said}. Its words are not shown here until then. The ticket ({ticket['status']}) is not "
            f"reminded or closed for want of an answer while the mail waits]")
    return [Notice(template="agent/customer_replied", recipient=assignee, ticket_id=ticket["id"],
                   auto_submitted=AUTO_GENERATED, agent_reply_to=assignee,
                   context={"text": text, "sender": clues.author, "sender_name": ""})]


def _ticket_answered(conn: Connection, app: App, clues: ReplyClues) -> dict | None:
    """The first ticket the clues name, in PRODUCT.md's threading order, that the author is a customer of."""
    if not clues.author:
        return None
    named = [a.ticket_id for a in read_reply_addresses(app.signer, app.settings.support_address,
                                                      list(clues.recipients))
             if a.ticket_id is not None and a.agent_fingerprint is None]
    domain = app.settings.support_domain
    named += [t for t in (our_message_ticket(app.signer, domain, m) for m in clues.referenced) if t]
    named += store.tickets_by_message_ids(conn, clues.referenced)
    named += clues.tags
    for ticket_id in dict.fromkeys(named):
        final = final_ticket(conn, ticket_id)
        if final is not None and store.participant_role(conn, final, clues.author) in _CUSTOMER_ROLES:
            return store.get_ticket(conn, final)
    return None
