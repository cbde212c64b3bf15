"""Which ticket a mail belongs to, in PRODUCT.md's order (pure).

1. a signed reply address `support+<token>@domain` we put in Reply-To;
2. In-Reply-To / References naming a mail on the ticket (our signed
   Message-IDs, or a Message-ID we received on it);
3. the subject tag, only when the sender already takes part in that ticket;
4. otherwise a new ticket.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from ticketd.domain.signing import Signer, address_fingerprint

_TICKET_TOKEN = re.compile(r"^t(\d+)(?:a([0-9a-f]{8})(n)?)?$")
_REACTION_TOKEN = re.compile(r"^([ld])(\d+)$")
_DESK_TOKEN = re.compile(r"^a([0-9a-f]{8})$")
_MESSAGE_ID_TOKEN = re.compile(r"^t(\d+)\.m[0-9a-f]+$")


@dataclass(frozen=True)
class ReplyAddress:
    """What a verified `+token` says: the ticket, and whose address it was."""
    ticket_id: int | None = None
    agent_fingerprint: str | None = None    # set on an agent's own reply address
    note: bool = False                       # an agent's address on an internal note's mail: the reply is one too
    reaction: str | None = None              # like | dislike
    message_row_id: int | None = None        # the message a reaction is about
    desk: bool = False                       # an agent's desk address: about no ticket (`#away`, `#back`)


@dataclass(frozen=True)
class Match:
    ticket_id: int | None
    matched_by: str           # reply_address | references | subject_tag | new


# ---------------------------------------------------------------- minting


def reply_address(signer: Signer, support_address: str, ticket_id: int, agent_email: str | None = None, *,
                  note: bool = False) -> str:
    """The signed Reply-To for one recipient of a ticket's mail; `note`: an agent's on an internal note's mail,
    whose reply is an internal note too."""
    payload = f"t{ticket_id}" + (f"a{address_fingerprint(agent_email)}" + ("n" if note else "") if agent_email else "")
    local, domain = support_address.split("@", 1)
    return f"{local}+{signer.sign(payload)}@{domain}"


def desk_address(signer: Signer, support_address: str, agent_email: str) -> str:
    """An agent's own signed address about no ticket: where they write `#away` and `#back`."""
    local, domain = support_address.split("@", 1)
    return f"{local}+{signer.sign('a' + address_fingerprint(agent_email))}@{domain}"


def reaction_address(signer: Signer, support_address: str, message_row_id: int, reaction: str) -> str:
    local, domain = support_address.split("@", 1)
    payload = ("l" if reaction == "like" else "d") + str(message_row_id)
    return f"{local}+{signer.sign(payload)}@{domain}"


def new_message_id(signer: Signer, domain: str, ticket_id: int | None, nonce: str | None = None) -> str:
    """A signed Message-ID (without brackets) so our own mail is recognised."""
    nonce = nonce or secrets.token_hex(8)
    return f"{signer.sign(f't{ticket_id or 0}.m{nonce}')}@{domain}"


# ---------------------------------------------------------------- reading


def read_reply_addresses(signer: Signer, support_address: str, recipients: list[str]) -> list[ReplyAddress]:
    """Every validly signed +token among the recipients; forged ones are ignored."""
    local, domain = support_address.lower().split("@", 1)
    found = []
    for addr in recipients:
        addr = addr.lower().strip("<> ")
        a_local, _, a_domain = addr.partition("@")
        if a_domain != domain or not a_local.startswith(local + "+"):
            continue
        payload = signer.verify(a_local[len(local) + 1:])
        if payload is None:
            continue
        if m := _TICKET_TOKEN.match(payload):
            found.append(ReplyAddress(ticket_id=int(m.group(1)), agent_fingerprint=m.group(2), note=bool(m.group(3))))
        elif m := _DESK_TOKEN.match(payload):
            found.append(ReplyAddress(agent_fingerprint=m.group(1), desk=True))
        elif m := _REACTION_TOKEN.match(payload):
            found.append(ReplyAddress(reaction="like" if m.group(1) == "l" else "dislike",
                                      message_row_id=int(m.group(2))))
    return found


# RFC 5322 section 3.6.4: References lists a thread from its first mail to
# the one answered, and a thread of years or a crafted header lists tens of
# thousands: more ids than one statement binds (65 535 on PostgreSQL), which
# quarantined the mail. The mails nearest the one answered, and the thread's
# first, say where it belongs.
REFERENCES_LOOKED_UP = 100


def referenced_ids(in_reply_to: list[str], references: list[str]) -> list[str]:
    """The Message-IDs a mail answers, the nearest first: In-Reply-To, then References from its end.

    Of a longer list, the first REFERENCES_LOOKED_UP of In-Reply-To, the
    last REFERENCES_LOOKED_UP of References and its first (the thread's root).
    """
    ids = in_reply_to[:REFERENCES_LOOKED_UP] + references[:-REFERENCES_LOOKED_UP - 1:-1]
    if len(references) > REFERENCES_LOOKED_UP:
        ids.append(references[0])
    return list(dict.fromkeys(ids))


def our_message_ticket(signer: Signer, domain: str, message_id: str) -> int | None:
    """The ticket named by one of our signed Message-IDs, or None."""
    local, _, mid_domain = message_id.lower().rpartition("@")
    if mid_domain != domain.lower():
        return None
    payload = signer.verify(local)
    if payload and (m := _MESSAGE_ID_TOKEN.match(payload)):
        ticket_id = int(m.group(1))
        return ticket_id or None
    return None


def is_our_message_id(signer: Signer, domain: str, message_id: str | None) -> bool:
    if not message_id:
        return False
    local, _, mid_domain = message_id.lower().rpartition("@")
    return mid_domain == domain.lower() and signer.verify(local) is not None


def choose_ticket(
    reply_ticket: int | None,
    referenced_tickets: list[int],
    tagged_tickets_where_participant: list[int],
    copy_of: int | None = None,
) -> Match:
    """Apply the threading order to what the shell found.

    `copy_of`: the ticket holding a mail of the sender's with this very
    Message-ID, which this one is a copy of (a list's copy with its footer,
    the same mail sent again with other bytes): it goes where the first
    went, under the references it would have matched had it carried them.
    """
    if reply_ticket is not None:
        return Match(reply_ticket, "reply_address")
    if referenced_tickets:
        return Match(referenced_tickets[0], "references")
    if copy_of is not None:
        return Match(copy_of, "message_id")
    if tagged_tickets_where_participant:
        return Match(tagged_tickets_where_participant[0], "subject_tag")
    return Match(None, "new")
