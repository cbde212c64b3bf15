"""What `ticketd status` says of each IMAP mailbox: polling, failing since when and why, or not polled yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketd.clock import iso
from ticketd.settings import ImapSettings
from ticketd.store.imap_health import MailboxHealth, load_health

if TYPE_CHECKING:
    from sqlalchemy import Engine

OK, FAILING, NOT_POLLED = "ok", "failing", "not polled yet"


def mailbox_status(mailbox: str, health: MailboxHealth | None) -> dict:
    """One mailbox for `status --json`: its state, and what the poller last reported (mail too big to take, and
    mail the server refused to hand out, too)."""
    if health is None:
        return {"mailbox": mailbox, "state": NOT_POLLED, "last_ok_at": None, "error": None,
                "failing_since": None, "failures": 0, "oversized": 0, "oversized_largest_bytes": None,
                "set_aside": 0, "set_aside_uids": []}
    state = FAILING if health.error is not None else OK
    return {"mailbox": mailbox, "state": state, "last_ok_at": iso(health.last_ok_at), "error": health.error,
            "failing_since": iso(health.failing_since), "failures": health.failures,
            "oversized": health.oversized, "oversized_largest_bytes": health.oversized_largest,
            # Mail the server refused to hand out (ingest.imap, FETCH_ATTEMPTS): it waits unread in the mailbox.
            "set_aside": len(health.set_aside), "set_aside_uids": list(health.set_aside)}


def imap_status(engine: Engine, boxes: list[ImapSettings]) -> list[dict]:
    """Each configured mailbox, in the order of ticketd.yaml (one no longer configured is left out)."""
    health = load_health(engine)
    return [mailbox_status(box.key, health.get(box.key)) for box in boxes]
