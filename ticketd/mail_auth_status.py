"""Does our MTA's Authentication-Results reach ticketd, where agent_auth or customer_auth asks for it (`status`)?

Both settings take the MTA's word from the header it writes on top of each
mail, under one of `agent_auth.trusted_authserv_ids`. An MTA that writes
none, or writes another id than the one listed (a typo, a renamed host,
mail fetched over IMAP from a provider that writes its own), fails every
check in silence: every agent's mail is refused, and every customer's mail
that names a ticket only by its tag opens a new one. `ticketd status` reads
the topmost header of the newest mails and says so (ticketd.health).
"""

from __future__ import annotations

import email.parser
from collections import Counter

from ingest.identity import head_of
from ticketd.domain.authority import authserv_id
from ticketd.settings import Settings
from ticketd.store import inbox
from ticketd.store.db import reading

# The newest mails looked at, and how much of each: our MTA's header is on top, the first lines.
LOOKED_AT = 20
HEAD_BYTES = 64 * 1024

_HEAD_PARSER = email.parser.BytesHeaderParser()


def topmost_authserv_id(raw_head: bytes) -> str:
    """The authserv-id of a mail's topmost Authentication-Results header; "" when it has none."""
    head = _HEAD_PARSER.parsebytes(head_of(raw_head) + b"\n\n")
    value = head.get("Authentication-Results")
    return authserv_id(str(value)) if value is not None else ""


def mail_auth_status(engine, settings: Settings) -> dict | None:
    """Which authserv-ids the newest mails' topmost Authentication-Results name; None when nothing asks."""
    asked_by = [name for name, part in (("agent_auth", settings.agent_auth), ("customer_auth", settings.customer_auth))
                if part.require_authentication_results]
    if not asked_by:
        return None
    with reading(engine) as conn:
        heads = inbox.newest_heads(conn, LOOKED_AT, HEAD_BYTES)
    seen = Counter(topmost_authserv_id(head) for head in heads)
    trusted = [t.lower() for t in settings.agent_auth.trusted_authserv_ids]
    return {"asked_by": asked_by, "trusted_authserv_ids": trusted, "looked_at": len(heads),
            "from_trusted": sum(n for found, n in seen.items() if found in trusted),
            "without_header": seen.pop("", 0),
            "topmost_from": dict(seen.most_common())}   # authserv-id -> mails, the most often first
