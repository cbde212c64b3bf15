"""When retention makes closed tickets and processed raw mail due, and how much one transaction erases (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import idna

from ingest.headers import a_label_domain

# What erased words read, in messages kept for the rest of a conversation.
ERASED_TEXT = "[erased]"

# At most this much per transaction: on SQLite a transaction holds the one
# write lock, and mail waiting for its 250 queues behind it (ticketd.store.write_queue).
TICKETS_PER_TRANSACTION = 50
RAW_ROWS_PER_TRANSACTION = 500

# How often `ticketd run` looks for what retention has made due, after the first look at start.
RETENTION_INTERVAL_SECONDS = 3600


@dataclass(frozen=True)
class RetentionCutoffs:
    """What is due: tickets closed before `closed_before`, processed raw mail before `processed_before`.

    None: that kind is kept for ever (retention off for it).
    """
    closed_before: datetime | None = None
    processed_before: datetime | None = None

    @property
    def off(self) -> bool:
        return self.closed_before is None and self.processed_before is None


def retention_cutoffs(now: datetime, closed_tickets_days: int | None, raw_mail_days: int | None) -> RetentionCutoffs:
    """The cutoffs for a pass at `now` under the `retention` settings (days, or None for never)."""
    def before(days: int | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    return RetentionCutoffs(closed_before=before(closed_tickets_days), processed_before=before(raw_mail_days))


def spellings(address: str) -> list[str]:
    """`address` (as ticketd keeps it) and the same mailbox with its domain in the other IDNA form, if any.

    Mail keeps an address as its sender wrote it: `kunde@bücher.example`
    from one mailer, `kunde@xn--bcher-kva.example` from another that has
    no SMTPUTF8. Both are one mailbox (RFC 5890), and an erasure asked for
    in one spelling must reach the other.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        return [address]
    found = [address]
    for other in (_a_labels(domain), _u_labels(domain)):
        if other and f"{local}@{other}" not in found:
            found.append(f"{local}@{other}")
    return found


def _a_labels(domain: str) -> str | None:
    try:
        return a_label_domain(domain).lower()
    except UnicodeError:
        return None


def _u_labels(domain: str) -> str | None:
    if "xn--" not in domain:
        return None
    try:
        return idna.decode(domain, uts46=True).lower()
    except (idna.IDNAError, UnicodeError):
        return None


def status_given_back(before_merge: str | None, merged_onto: str) -> str:
    """The status of another customer's ticket given back from an erased one (README "Erasure and retention").

    The merge closed it without an answer: it goes back to the status it
    had before (`before_merge`, from its `merged_into` event), so it is
    worked, warned and closed again as any ticket. It stays closed if it was
    closed, or if the ticket it joined (`merged_onto`) was closed since: its
    problem was solved there. A wake-up or due date left with the merge,
    so a postponed or in-development ticket comes back open.
    """
    if before_merge is None or "closed" in (before_merge, merged_onto):
        return "closed"
    if before_merge in ("postponed", "in_development"):
        return "open"
    return before_merge
