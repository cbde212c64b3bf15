"""Like/dislike clicks: a mail to a signed reaction address, recorded on the message it names.

Decisions worth knowing (issue 4): a mail to a like/dislike address never
opens or reopens a ticket. A second click of the other link changes the
reaction (the latest stands; the history keeps both). Words written in such
a mail ("it did NOT help, call me") are the customer's: they are stored on
the ticket and the assignee gets them, like any customer mail. Only the
ticket's requester and followers react: the signed address travels with the
mail, and a stranger it was forwarded to is logged as not counted (never a
reaction, never words on the ticket) so that `ticketd report` counts the
people the reply was written for.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ingest.quotes import cut_signature, strip_reply
from ticketd.app import App
from ticketd.customer_mail import assignee_told
from ticketd.domain.notices import Notice
from ticketd.store import tickets as store
from ticketd.ticket_changes import Decision, mail_ref, store_message

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail

# What a phone or webmail puts in an otherwise empty mail: no words of the customer's.
_BOILERPLATE = re.compile(
    r"(?is)^\W*(sent from|get outlook|envoy[ée] de|von meinem|enviado desde|inviato da)\b.{0,80}$")


def own_words(text: str) -> str:
    """The text a customer wrote in a reaction mail: quotes, signature and device taglines left out."""
    words = cut_signature(strip_reply(text or "")).strip()
    return "" if _BOILERPLATE.match(words) else words


def record_reactions(conn, app: App, mail: IncomingMail, now) -> Decision | None:
    """A mail to a signed like/dislike address: record it on that message; None if it names none."""
    ticket_id = None
    who = mail.parsed.from_addr or "unknown"
    recorded = []
    # The same address may come twice (in To and in the envelope): one click.
    for reaction in {(r.message_row_id, r.reaction): r for r in mail.reactions}.values():
        message = store.get_message(conn, reaction.message_row_id) if reaction.message_row_id else None
        if message is None:
            continue
        ticket_id = message["ticket_id"]
        if mail.robot_reason is not None:
            store.add_event(conn, ticket_id, now, who, "reaction_ignored", to_value=reaction.reaction,
                            reason=f"automatic mail ({mail.robot_reason}); {mail_ref(mail)}",
                            message_row_id=message["id"])
            continue
        if store.participant_role(conn, ticket_id, who) not in ("requester", "follower"):
            store.add_event(conn, ticket_id, now, who, "reaction_ignored", to_value=reaction.reaction,
                            reason="not counted: the sender is not the ticket's requester or a follower; "
                                   f"{mail_ref(mail)}", message_row_id=message["id"])
            continue
        before = store.add_reaction(conn, message["id"], reaction.reaction, who, now)
        if before is not None:
            store.add_event(conn, ticket_id, now, who, "reaction", from_value=before or None,
                            to_value=reaction.reaction,
                            reason=f"{reaction.reaction} on message {message['id']}; {mail_ref(mail)}",
                            message_row_id=message["id"])
        recorded.append(reaction.reaction)
    if ticket_id is None:
        return None
    words = own_words(mail.text) if recorded else ""
    notices = _keep_words(conn, app, mail, ticket_id, words, recorded[-1], now) if words else []
    return Decision(ticket_id, notices=notices)


def _keep_words(conn, app: App, mail: IncomingMail, ticket_id: int, words: str, reaction: str,
                now) -> list[Notice]:
    """The customer's words with their click: a message on the ticket (matched by its reaction
    address), and the assignee told."""
    mail = replace(mail, matched_by="reaction")
    row_id = store_message(conn, app, mail, ticket_id, now, author_role="customer", text=words)
    store.add_event(conn, ticket_id, now, mail.parsed.from_addr or "unknown", "customer_replied",
                    message_row_id=row_id, reason=f"{mail_ref(mail)} with a {reaction}")
    store.update_ticket(conn, ticket_id, now)
    assignee = store.get_ticket(conn, ticket_id)["assignee"]
    return [assignee_told(assignee, ticket_id, mail, f"[with a {reaction} of the reply]\n\n{words}", row_id)
            ] if assignee else []
