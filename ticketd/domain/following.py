"""Who an agent's `#follow` or an admin's `ticketd tickets follow` may add to a ticket's followers, and why not (pure).

Followers otherwise join only by writing to the ticket or by a customer's
Cc (PRODUCT.md "Customers by email"); a customer who writes from a second
address, or a colleague they forgot to copy, has to be added by a person.
"""

from __future__ import annotations

from ingest.headers import is_address


def follow_refusal(address: str, *, agent: bool, ours: bool) -> str | None:
    """Why `address` cannot follow a ticket, or None: it must be a mailbox a customer reads."""
    if not is_address(address):
        return f"{address!r} is not an email address (local@domain)"
    if ours:
        return f"{address} is one of ticketd's own addresses: mail to it would only come back"
    if agent:
        return (f"{address} is an agent, who gets a ticket's mail as an agent (#assign gives it to them, "
                "#note writes to them), not its customers' copy")
    return None


def already_on_ticket(address: str, role: str | None) -> str | None:
    """Why following would change nothing for someone on the ticket as `role`, or None when they are not on it."""
    if role == "requester":
        return f"{address} is the ticket's requester, who gets its replies already"
    if role == "follower":
        return f"{address} follows the ticket already"
    if role is not None:
        return f"{address} is on the ticket as an {role}"
    return None
