"""What merging one ticket into another decides: whether it may, where merged tickets lead, who joins as what."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


def follow_merges(ticket_id: int, merged_into: Callable[[int], int | None]) -> int:
    """The ticket at the end of `ticket_id`'s merged_into chain (S1 -> S2 -> T gives T).

    `tickets merge` never makes a cycle (it refuses a source or a target
    that was merged), so only a database edited by hand has one: the chain
    then stops at the ticket that closes it, and a mail still finds a ticket.
    """
    seen = {ticket_id}
    while (next_id := merged_into(ticket_id)) is not None and next_id not in seen:
        seen.add(next_id)
        ticket_id = next_id
    return ticket_id


def refusal(source_id: int, into_id: int, source: dict | None, into: dict | None,
            into_end: int | None = None) -> str | None:
    """Why SOURCE may not be merged into INTO, or None when it may.

    `into_end` is where INTO's own merged_into chain ends, to name the
    ticket to use instead. A closed INTO is fine: a customer's second mail
    about a problem already solved belongs with it, and it stays closed.
    """
    if source_id == into_id:
        return f"ticket [#{source_id}] cannot be merged into itself"
    if source is None:
        return f"no ticket {source_id}"
    if into is None:
        return f"no ticket {into_id}"
    if source["merged_into"] is not None:
        return f"ticket [#{source_id}] was already merged into [#{source['merged_into']}]"
    if into["merged_into"] is not None:
        instead = into_end if into_end is not None else into["merged_into"]
        if instead == source_id:
            return (f"ticket [#{into_id}] was merged into [#{into['merged_into']}], which leads back to "
                    f"[#{source_id}]: there is nothing to merge")
        return (f"ticket [#{into_id}] was merged into [#{into['merged_into']}]: merge into "
                f"[#{instead}] instead")
    return None


@dataclass(frozen=True)
class Joining:
    """One of SOURCE's participants: moved to INTO with `role`, or dropped as already there (role None)."""

    participant_id: int
    email: str
    role: str | None


def joining(source_people: Iterable[dict], into_emails: Iterable[str]) -> list[Joining]:
    """Who of SOURCE's participants joins INTO, and as what.

    SOURCE's requester becomes a follower: INTO has its own requester, and a
    follower gets the public replies and may accept or reject a solution,
    as the requester of SOURCE did. Followers and agents keep their role.
    Someone INTO already has keeps the role they have there.
    """
    present = {e.lower() for e in into_emails}
    out = []
    for person in source_people:
        email = person["email"].lower()
        if email in present:
            out.append(Joining(person["id"], email, None))
            continue
        present.add(email)
        out.append(Joining(person["id"], email, "follower" if person["role"] == "requester" else person["role"]))
    return out
