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

# The sweep of attachment files no row names removes at most this many per
# batch: each batch asks the rows again after setting its files aside.
FILES_PER_BATCH = 500

# A file no row names may be a mail's that is being processed: prepare writes
# it (or, preparing a mail again, touches it) before the mail's transaction
# commits. That commit follows within twice max_prepare_seconds (an overrun is
# killed and tried once more alone), the preparing of the batch ahead of it
# and one write transaction (a batch, or an erasure of at most 50 tickets):
# minutes. A day, or ten times max_prepare_seconds where that is set higher,
# is many times that. Should a commit come later still, processing finds its
# file gone after the commit and writes it again (ticketd.store.files).
ORPHAN_GRACE_FLOOR_SECONDS = 24 * 3600
ORPHAN_GRACE_PREPARATIONS = 10


def orphan_grace_seconds(max_prepare_seconds: float) -> float:
    """How long ago a file no row names must have been written for the sweep to remove it."""
    return max(ORPHAN_GRACE_FLOOR_SECONDS, ORPHAN_GRACE_PREPARATIONS * max_prepare_seconds)


def is_stored_file_name(name: str) -> bool:
    """Whether a name under data_dir/attachments/xx/ is a stored file's: its sha256 in lower-case hex."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def is_temp_file_name(name: str) -> bool:
    """Whether it is a file being written (`ticketd.store.files.store_blob`), or left half-written by a kill."""
    return name.startswith(".tmp-")


def outlived_grace(mtime: float, now: float, grace: float) -> bool:
    """Whether a file last written at `mtime` (epoch seconds) is past the grace at `now`."""
    return mtime < now - grace


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
