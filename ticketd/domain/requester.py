"""Who a new ticket's customer is: its sender, or the person a contact form wrote for (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Requester:
    address: str
    name: str | None
    from_reply_to: bool = False   # a route's `requester: reply_to` took it from Reply-To


def requester_of(from_addr: str | None, from_name: str | None, raw_from: str, reply_to: list[str],
                 reply_to_name: str | None, *, use_reply_to: bool,
                 not_a_customer: Callable[[str], bool]) -> Requester:
    """From, unless a route said the mail comes from a contact form and Reply-To names someone else.

    A website's form sends as itself (`From: wordpress@example.com`) and
    puts the visitor in Reply-To, where replies belong (RFC 5322 3.6.2).
    Only an admin's route makes Reply-To the customer: anybody may write a
    Reply-To, and a person's own mail client setting one is still that
    person writing. Our own addresses and agents are never a customer; a
    mail without a usable Reply-To keeps its sender.
    """
    sender = Requester(from_addr or raw_from[:320].lower() or "unknown", from_name)
    if not use_reply_to:
        return sender
    usable = [a for a in reply_to if a and a != from_addr and not not_a_customer(a)]
    if not usable:
        return sender
    return Requester(usable[0], reply_to_name if usable[0] == reply_to[0] else None, from_reply_to=True)
