"""Which agent gets a ticket next: round robin or least open, skipping away and full agents (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ticketd.domain.rules import Agent


def available(agent: Agent, open_counts: Mapping[str, int]) -> bool:
    """Not away, and under `max_open` if the file sets one."""
    if agent.away:
        return False
    return agent.max_open is None or open_counts.get(agent.email, 0) < agent.max_open


def _after(members: Sequence[Agent], last: str | None) -> list[Agent]:
    """Members in file order, starting after `last` (from the top if `last` left the group)."""
    emails = [a.email for a in members]
    if last in emails:
        start = emails.index(last) + 1
        return list(members[start:]) + list(members[:start])
    return list(members)


def next_agent(strategy: str, members: Sequence[Agent], last: str | None, open_counts: Mapping[str, int],
               exclude: Collection[str] = ()) -> Agent | None:
    """The agent to give the next ticket to, or None if nobody is available.

    round_robin: the first available member after `last`, in file order.
    least_open: the available member with the fewest open tickets; ties go
    round robin from `last`, so equal loads still rotate.
    """
    candidates = [a for a in _after(members, last) if a.email not in exclude and available(a, open_counts)]
    if not candidates:
        return None
    if strategy == "least_open":
        return min(candidates, key=lambda a: open_counts.get(a.email, 0))  # min keeps the first of equals
    return candidates[0]


def why_unavailable(members: Sequence[Agent], open_counts: Mapping[str, int], exclude: Collection[str]) -> str:
    """Why nobody in `members` can take a ticket, one clause per member (for a refused `#assign <group>`)."""
    clauses = []
    for agent in members:
        if agent.email in exclude:
            clauses.append(f"{agent.email} has it")
        elif agent.away:
            clauses.append(f"{agent.email} is away")
        elif agent.max_open is not None and open_counts.get(agent.email, 0) >= agent.max_open:
            clauses.append(f"{agent.email} has {open_counts.get(agent.email, 0)} open tickets "
                           f"(max_open {agent.max_open})")
    return "; ".join(clauses) or "the group has no agents"


def kept_place(before: Sequence[Agent], after: Sequence[Agent], last: str | None) -> str | None:
    """The member of `after` a group's cursor should name so that round robin goes on where `last` left off;
    None when the cursor needs no change.

    `last` left the group (removed from the file, or from the group) between
    the members `before` and `after` a reload: the nearest member before it
    in the old order who is still there takes the cursor, so the one who came
    after `last` is next. From the top instead (`_after`), the first member got
    two tickets in a row and the next one was skipped.
    """
    now = {a.email for a in after}
    was = [a.email for a in before]
    if last is None or last in now or last not in was or not now:
        return None
    return _nearest_before(was, was.index(last), now)


def _nearest_before(order: Sequence[str], at: int, present: Collection[str]) -> str | None:
    """The nearest of `order` before position `at` that is in `present`, going round past the start."""
    for step in range(1, len(order)):
        email = order[(at - step) % len(order)]
        if email in present:
            return email
    return None
