"""Is this mail the agent's, and does our MTA vouch for its From? The checks mail must pass (pure).

PRODUCT.md, "Agents by email": the mail came through that agent's own signed
reply address and From is that agent. Identity comes from From alone (not
Reply-To, not Sender); several From addresses carry no authority. Optionally
the topmost Authentication-Results header (RFC 8601), which our own MTA
adds, must come from a trusted authserv-id and show DKIM or DMARC passing
for From's domain. A header lower down claiming a trusted authserv-id was
written by someone on the way, not by us, and is ignored (RFC 8601 section 5).
The same proof may be asked of a customer's mail that reaches a ticket
only by what anyone may know (ticketd.customer_auth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ticketd.domain.signing import address_fingerprint


@dataclass(frozen=True)
class Verdict:
    agent: str | None        # the agent's address when the mail is theirs
    reason: str              # why, either way, for the history
    # When From is an agent but the mail is not theirs: what went wrong, in words for that agent.
    advice: str | None = None


def _strip_comments(value: str) -> str:
    # RFC 5322 CFWS comments, possibly nested: "(sender verified (twice))"
    previous = None
    while previous != value:
        previous, value = value, re.sub(r"\([^()]*\)", " ", value)
    return value


def _aligned(domain: str | None, from_domain: str) -> bool:
    # Relaxed alignment (RFC 7489 section 3.1): same organisational domain,
    # approximated as equal or one a subdomain of the other.
    if not domain:
        return False
    domain = domain.lower().lstrip("@").rsplit("@", 1)[-1].strip(".")
    return domain == from_domain or from_domain.endswith("." + domain) or domain.endswith("." + from_domain)


# How trusted_authserv_ids names a header that names no authserv-id: Microsoft 365 (Exchange Online)
# writes `Authentication-Results: spf=pass (sender IP is …) smtp.mailfrom=…; dkim=pass …`, its results
# first, against RFC 8601 section 2.2. Parentheses make it no host name.
UNNAMED = "(none)"


def authserv_id(header: str | None) -> str:
    """The authserv-id an Authentication-Results value names (RFC 8601 section 2.2), lower case;
    UNNAMED when it opens with a result instead, "" when it is empty."""
    first = _strip_comments(header or "").split(";", 1)[0].split()
    if not first:
        return ""
    return UNNAMED if "=" in first[0] else first[0].lower()


def authentication_passes(header: str, trusted_ids: list[str] | tuple[str, ...], from_addr: str) -> tuple[bool, str]:
    """Whether one Authentication-Results value is trusted and shows DKIM/DMARC pass for From."""
    value = _strip_comments(header or "")
    parts = [p.strip() for p in value.split(";")]
    authserv = authserv_id(value)
    if authserv not in {t.lower() for t in trusted_ids}:
        return False, f"topmost Authentication-Results is from {authserv or 'nobody'!r}, not a trusted authserv-id"
    from_domain = from_addr.rsplit("@", 1)[-1].lower()
    for resinfo in parts[1:] if authserv != UNNAMED else parts:
        tokens = resinfo.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].lower().partition("=")
        props = dict(t.lower().split("=", 1) for t in tokens[1:] if "=" in t)
        if result != "pass":
            continue
        if method == "dmarc" and _aligned(props.get("header.from", from_domain), from_domain):
            return True, f"dmarc=pass by {authserv}"
        if method == "dkim" and _aligned(props.get("header.d") or props.get("header.i"), from_domain):
            return True, f"dkim=pass by {authserv}"
    # From's domain is not named: the reason is kept in histories that erasure (`ticketd forget`) may leave.
    return False, f"Authentication-Results by {authserv} shows no DKIM or DMARC pass for From's domain"


def vouched_for(topmost: str | None, trusted_ids: list[str] | tuple[str, ...], from_addr: str) -> tuple[bool, str]:
    """Whether our MTA vouches for From (the topmost Authentication-Results, see above), and why or why not."""
    if not topmost:
        return False, "the mail has no Authentication-Results"
    return authentication_passes(topmost, trusted_ids, from_addr)


def agent_authority(*, from_addr: str | None, from_count: int, reply_fingerprint: str | None,
                    agent_emails: list[str] | tuple[str, ...] | set[str],
                    authentication_results: list[str] | tuple[str, ...] = (),
                    require_authentication: bool = False,
                    trusted_authserv_ids: list[str] | tuple[str, ...] = ()) -> Verdict:
    """The agent whose mail this is, or None with the reason it is not an agent's."""
    agents = {a.lower() for a in agent_emails}
    sender = (from_addr or "").lower()
    if from_count != 1 or not sender:
        return Verdict(None, f"From names {from_count} addresses; agent mail needs exactly one")
    if sender not in agents:
        return Verdict(None, "From is not an agent")
    if reply_fingerprint is None:
        return Verdict(None, f"From claims agent {sender} but the mail did not come through "
                             "that agent's signed reply address",
                       "it was not sent to your own reply address for this ticket (the Reply-To of "
                       "the mail ticketd sends you about it)")
    if reply_fingerprint != address_fingerprint(sender):
        return Verdict(None, f"From claims agent {sender} but the mail came through another "
                             "person's signed reply address",
                       "it was sent to another person's reply address (the Reply-To of a mail ticketd "
                       "sent to someone else, perhaps forwarded to you)")
    if require_authentication:
        passed, why = vouched_for(authentication_results[0] if authentication_results else None,
                                  trusted_authserv_ids, sender)
        if not passed:
            return Verdict(None, f"From claims agent {sender} but {why}",
                           f"our mail server did not vouch for it ({why})")
        return Verdict(sender, f"signed reply address of {sender}; {why}")
    return Verdict(sender, f"signed reply address of {sender}")
