"""Like/dislike clicks: a mail to a signed reaction address, recorded on the message it names.

Decision worth knowing (issue 4): a mail to a like/dislike address records
the reaction and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketd.app import App
from ticketd.store import tickets as store
from ticketd.ticket_changes import mail_ref

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail


def record_reactions(conn, app: App, mail: IncomingMail, now) -> int | None:
    """A mail to a signed like/dislike address: record it on that message; its ticket, or None.

    Such a mail never opens a ticket or reopens one; a second reaction from
    the same address on the same message is ignored (the first one stands).
    """
    ticket_id = None
    who = mail.parsed.from_addr or "unknown"
    for reaction in mail.reactions:
        message = store.get_message(conn, reaction.message_row_id) if reaction.message_row_id else None
        if message is None:
            continue
        ticket_id = message["ticket_id"]
        if mail.robot_reason is not None:
            store.add_event(conn, ticket_id, now, who, "reaction_ignored", to_value=reaction.reaction,
                            reason=f"automatic mail ({mail.robot_reason}); {mail_ref(mail)}",
                            message_row_id=message["id"])
        elif store.add_reaction(conn, message["id"], reaction.reaction, who, now):
            store.add_event(conn, ticket_id, now, who, "reaction", to_value=reaction.reaction,
                            reason=f"{reaction.reaction} on message {message['id']}; {mail_ref(mail)}",
                            message_row_id=message["id"])
    return ticket_id

