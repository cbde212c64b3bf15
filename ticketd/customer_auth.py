"""Whether a customer's From may be taken at its word where nothing else in the mail vouches for it (customer_auth).

PRODUCT.md threading 3 joins a mail by the subject's tag when its sender
takes part in the ticket; threading 2 by the Message-ID of a mail we
received (in its references, or as its own: another copy of that mail,
ticketd.copies). Neither is a secret: a ticket's number is counted up, a
customer's address and Message-ID are on every copy, and From is written
by whoever sends the mail. A forger who joins a ticket that way could
accept its proposed solution, reopen or rate it, and copy themselves in
Cc onto every public reply. With `customer_auth.require_authentication_results`
such a mail counts as its From's only when our MTA vouches for that From
(DKIM or DMARC pass in its topmost Authentication-Results, RFC 8601, or
in the report of a trusted ARC sealer it checked; ticketd.mail_proof); the signed reply address and our signed
Message-IDs need no such proof, since only a reader of our mail has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketd.mail_proof import mta_proof

if TYPE_CHECKING:
    from ingest.parse import ParsedMail
    from ticketd.settings import Settings


def unvouched(settings: Settings, parsed: ParsedMail) -> str | None:
    """Why From is not proven, when customer_auth asks for proof and our MTA gives none; else None."""
    if not settings.customer_auth.require_authentication_results:
        return None
    passed, why = mta_proof(settings, parsed, parsed.author or "")
    return None if passed else why
