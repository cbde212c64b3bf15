"""Who an agent's `#follow` or an admin's `ticketd tickets follow` may add to a ticket's followers, and why not (pure).

Followers otherwise join only by writing to the ticket or by a customer's
Cc (PRODUCT.md "Customers by email"); a customer who writes from a second
address, or a colleague they forgot to copy, has to be added by a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ingest.headers import is_address

# How many of the addresses a mail's limit left out its event names; the count says the rest.
LEFT_OUT_NAMED = 20


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


@dataclass(frozen=True)
class FollowersJoining:
    """Of the addresses a mail brings: who joins as a follower, and who the limit left out."""
    join: tuple[tuple[str, str | None], ...]
    left_out: tuple[str, ...]


def followers_joining(candidates: Iterable[tuple[str, str | None]], on_ticket: Mapping[str, str],
                      limit: int | None) -> FollowersJoining:
    """Which (address, name) pairs join a ticket whose participants are `on_ticket` (lower-case address: role).

    Someone already on the ticket, or named twice, is no change. `limit`
    caps the ticket's followers (settings.max_followers) when mail brings
    them, so that a mail Cc'ing thousands does not make each a recipient of
    every public reply; None, a person's own choice (`#follow`), adds anyone.
    """
    seen = set(on_ticket)
    followers = sum(1 for role in on_ticket.values() if role == "follower")
    join: list[tuple[str, str | None]] = []
    left_out: list[str] = []
    for address, name in candidates:
        key = address.lower()
        if key in seen:
            continue
        seen.add(key)
        if limit is not None and followers + len(join) >= limit:
            left_out.append(key)
        else:
            join.append((address, name))
    return FollowersJoining(tuple(join), tuple(left_out))


def left_out_reason(left_out: tuple[str, ...], limit: int | None, why: str) -> str:
    """The history's words for addresses a mail would have made followers past the limit."""
    named = ", ".join(left_out[:LEFT_OUT_NAMED])
    more = f" and {len(left_out) - LEFT_OUT_NAMED} more" if len(left_out) > LEFT_OUT_NAMED else ""
    return (f"not made followers, the ticket has the {limit} followers mail may bring (max_followers): "
            f"{named}{more}; {why}")
