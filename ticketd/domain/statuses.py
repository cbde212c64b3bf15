"""Ticket statuses and who may set which (PRODUCT.md, "The lifecycle")."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    WAITING_CUSTOMER = "waiting_customer"
    POSTPONED = "postponed"
    IN_DEVELOPMENT = "in_development"
    SOLUTION_PROPOSED = "solution_proposed"
    CLOSED = "closed"


# `#status` may set these; postponed and in_development need their own
# commands because they carry fields (#postpone, #dev).
AGENT_SETTABLE = frozenset({
    Status.OPEN, Status.WAITING_CUSTOMER, Status.SOLUTION_PROPOSED, Status.CLOSED,
})
AGENT_COMMAND_STATUSES = AGENT_SETTABLE | {Status.POSTPONED, Status.IN_DEVELOPMENT}

PRIORITIES = ("low", "normal", "high", "urgent")
TYPES = ("question", "idea", "bug")


def parse_status(value: str) -> Status | None:
    try:
        return Status(value.strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        return None
