"""An agent's mail to the support address naming a ticket they are not on: told how to write on it.

A colleague not (yet) on a ticket holds no reply address of it, so they
write to support@ with its tag in the subject ("Re: [#184] Printer", a
`#note` for the assignee). The tag counts only for the ticket's
participants (PRODUCT.md, Threading 3: "a mail that only carries someone
else's tag opens its own ticket"; its From proves nothing, anyone may
write it), so the mail opens a ticket of its own, and ticket 184 heard
nothing. The agent named in From is also sent `agent/mail_not_applied` for
ticket 184 with their own reply address, through which their words do
count, and the number of the ticket their mail opened. A forged From only
gets the real agent that mail.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ticketd.app import App
from ticketd.domain.notices import AUTO_REPLIED, Notice
from ticketd.domain.tags import find_tags
from ticketd.store import tickets as store

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail

# A forwarded mail is one to open a ticket with ("Fwd: [#184] …" from a colleague's own mailbox is the
# customer's mail passed on, ticketd.domain.requester); only an answer or a new mail names a ticket.
_FORWARD = re.compile(r"\s{0,20}(?:fwd?|wg|tr|rv|enc|vs|doorst)\s{0,5}:", re.IGNORECASE)


def tagged_ticket(conn, app: App, mail: IncomingMail, resolved) -> int | None:
    """The ticket an agent's mail to the support address names by its tag while they are not on it; None
    for any other mail. `resolved` follows a merged ticket to the one it went into."""
    p = mail.parsed
    agent = app.rules.agent(p.author) if p.author else None
    if agent is None or mail.robot_reason is not None or mail.reply_address is not None or _FORWARD.match(p.subject):
        return None
    for tag in find_tags(p.subject):
        if (ticket_id := resolved(tag)) is not None and store.participant_role(conn, ticket_id, agent.email) is None:
            return ticket_id
    return None


def tell_colleague(app: App, mail: IncomingMail, ticket_id: int, opened: int) -> Notice:
    """agent/mail_not_applied for the ticket, with the agent's own reply address of it and the ticket their
    mail `opened`."""
    agent = app.rules.agent(mail.parsed.author)
    return Notice(
        template="agent/mail_not_applied", recipient=agent.email, ticket_id=ticket_id,
        auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=mail.parsed.message_id,
        context={"reason": f"it came to the support address, and you are not on [#{ticket_id}], so its tag does "
                           "not make it a mail of that ticket", "text": mail.text, "agent_name": agent.name,
                 "opened": opened},
    )
