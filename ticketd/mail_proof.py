"""What our MTA vouches for about a mail's From, read with the settings' trusted ids and ARC sealers.

agent_auth and customer_auth ask the same question of a mail: does the
topmost Authentication-Results (RFC 8601), written by our own MTA, show
DKIM or DMARC passing for the writer's domain (ticketd.domain.authority)?
When our own list relayed the mail (a Google Group at the support address,
ticketd.domain.own_list), a pass for our own domains is the list's: it
signs and sends as us whoever wrote, so a writer in our domains is vouched
for only by what the list reported and sealed on receipt (ARC, RFC 8617).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketd.domain.authority import vouched_for
from ticketd.domain.loops import is_our_address
from ticketd.domain.own_list import is_own_list

if TYPE_CHECKING:
    from ingest.parse import ParsedMail
    from ticketd.settings import Settings


def mta_proof(settings: Settings, parsed: ParsedMail, address: str) -> tuple[bool, str]:
    """Whether our MTA vouches for `address` (the mail's From, or its writer as our list kept it), and why."""
    ours = [settings.support_address, *settings.smtp.extra_addresses]
    relayed_as_us = is_own_list(
        parsed.headers, ours,
        lambda a: is_our_address(a, settings.support_address, settings.smtp.extra_addresses))
    auth = settings.agent_auth
    return vouched_for(parsed.headers.get("authentication-results"), auth.trusted_authserv_ids, address,
                       parsed.arc_headers, auth.trusted_arc_sealers,
                       relay_domains=sorted({a.rsplit("@", 1)[-1].lower() for a in ours}) if relayed_as_us else ())


def agent_proof(settings: Settings, parsed: ParsedMail) -> tuple[bool, str] | None:
    """mta_proof for From, when agent_auth asks for it (ticketd.domain.authority.agent_authority); else None."""
    if not settings.agent_auth.require_authentication_results:
        return None
    return mta_proof(settings, parsed, parsed.from_addr or "")
