"""Where a ticket goes when the rules no longer have its group: the routes again, as for a new mail (pure).

An admin renaming or removing a group in rules.yaml leaves the open tickets
that carry it with a group nobody takes and no breach can reassign in
(PRODUCT.md: a rules change never silently half-applied). Each such ticket
is routed again by the rules in force, on its first mail's facts and its
own type and priority, and takes only the group the routes give.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ticketd.domain.rules import MailFacts, RuleSet


@dataclass(frozen=True)
class Regroup:
    """A ticket's new group (None: no route gives one the rules have) and the routes that gave it."""
    former: str
    group: str | None
    routes: tuple[str, ...] = ()

    def reason(self) -> str:
        """The `group` event's reason: why the group changed, and by which routes."""
        gone = f"group {self.former} is no longer in rules.yaml"
        if self.group is not None:
            return f"{gone}; routed again by its first mail, routes: " + ", ".join(self.routes)
        routes = f" (routes: {', '.join(self.routes)})" if self.routes else ""
        return (f"{gone}; routed again by its first mail, no route gives it a group{routes}: nobody will take "
                "it until it is given a group or an agent (`ticketd tickets assign ID GROUP-or-AGENT`)")


def regroup(rules: RuleSet, former: str, facts: MailFacts) -> Regroup:
    """Route the ticket again as if its first mail came now; only a group the rules have counts."""
    decision = rules.route(facts)
    group = decision.group if decision.group in rules.groups else None
    return Regroup(former=former, group=group, routes=decision.routes)


def moves_summary(moves: Iterable[tuple[str, str | None]]) -> str:
    """`support -> helpdesk: 3, billing -> no group: 1`, for the one log line a reload writes."""
    counted = Counter(moves)
    return ", ".join(f"{former} -> {group or 'no group'}: {n}"
                     for (former, group), n in sorted(counted.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")))
