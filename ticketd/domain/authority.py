"""Is this mail the agent's, and does our MTA vouch for its From? The checks mail must pass (pure).

PRODUCT.md, "Agents by email": the mail came through that agent's own signed
reply address and From is that agent. Identity comes from From alone (not
Reply-To, not Sender); several From addresses carry no authority. Optionally
the topmost Authentication-Results header (RFC 8601), which our own MTA
adds, must come from a trusted authserv-id and show DKIM or DMARC passing
for From's domain. A header lower down claiming a trusted authserv-id was
written by someone on the way, not by us, and is ignored (RFC 8601 section 5).
Where that header says the mail's ARC chain passed (RFC 8617), what a sealer
the admin trusts reported on receipt may vouch instead (a Google Group at the
support address breaks the writer's own signature).
The same proof may be asked of a customer's mail that reaches a ticket
only by what anyone may know (ticketd.customer_auth).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ticketd.domain.signing import address_fingerprint


@dataclass(frozen=True)
class Verdict:
    agent: str | None        # the agent's address when the mail is theirs
    reason: str              # why, either way, for the history
    # When From is an agent but the mail is not theirs: what went wrong, in words for that agent.
    advice: str | None = None


_COMMENT_PIECES = re.compile(r"\\.|[()]|[^()\\]+|\\", re.DOTALL)


def _strip_comments(value: str) -> str:
    """The value with its RFC 5322 comments, possibly nested ("(sender verified (twice))"), each a blank.

    One pass, counting depth: removing the innermost comments again and again took time growing with the
    square of the nesting, and the header is the sender's to write where no MTA of ours writes one. A "("
    never closed leaves the rest of the value a comment; a ")" never opened is kept.
    """
    kept: list[str] = []
    depth = 0
    for piece in _COMMENT_PIECES.findall(value):
        if piece == "(":
            depth += 1
            if depth == 1:
                kept.append(" ")
        elif piece == ")" and depth:
            depth -= 1
        elif not depth:
            kept.append(piece)
    return "".join(kept)


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


def _results(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """An Authentication-Results value (comments removed) read: its authserv-id and each result as
    (method, result, properties), lower case."""
    authserv = authserv_id(value)
    results = []
    for resinfo in value.split(";")[1:] if authserv != UNNAMED else value.split(";"):
        tokens = resinfo.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].lower().partition("=")
        results.append((method, result, dict(t.lower().split("=", 1) for t in tokens[1:] if "=" in t)))
    return authserv, results


# DMARC results that say From's domain refuses the mail as its own (RFC 7489 section 11.2; some MTAs
# write the policy applied instead of "fail").
_DMARC_REFUSED = frozenset({"fail", "quarantine", "reject"})


def _passed_for(results: list[tuple[str, str, dict[str, str]]], from_domain: str) -> str | None:
    """The method, DMARC or DKIM, that passed for From's domain, if one did, and DMARC did not fail for it.

    A DKIM pass our relaxed alignment reads as From's (a subdomain's signature) may still fail the
    domain's own DMARC policy (strict alignment, `adkim=s`): our MTA's verdict on From then stands.
    """
    if any(method == "dmarc" and result in _DMARC_REFUSED and _aligned(props.get("header.from", from_domain),
                                                                         from_domain)
           for method, result, props in results):
        return None
    for method, result, props in results:
        if result != "pass":
            continue
        if method == "dmarc" and _aligned(props.get("header.from", from_domain), from_domain):
            return "dmarc"
        if method == "dkim" and _aligned(props.get("header.d") or props.get("header.i"), from_domain):
            return "dkim"
    return None


def _instance(value: str) -> int | None:
    # RFC 8617 section 4.2.1: i= is 1 to 50.
    value = value.strip()
    return int(value) if value.isdigit() and 1 <= int(value) <= 50 else None


def _arc_passes(arc_headers: Sequence[tuple[str, str]], sealers: Sequence[str], from_domain: str
                ) -> tuple[bool, str]:
    """Whether a trusted sealer's ARC-Authentication-Results shows DKIM or DMARC pass for From's domain.

    An intermediary that changes a mail (a mailing list's footer, a Google Group writing itself into
    From) breaks the writer's DKIM; one that takes part in ARC (RFC 8617) first records what it saw
    (ARC-Authentication-Results, instance i) and seals that (ARC-Seal, d= its domain). Our MTA checks
    every seal (`arc=pass`); which sealer's word counts is the admin's choice.
    """
    trusted = {s.lower().strip(".") for s in sealers}
    seals: dict[int, list[str]] = {}
    reports: dict[int, list[str]] = {}
    for name, value in arc_headers:
        if name == "arc-seal":
            tags = dict(part.partition("=")[::2] for part in re.sub(r"\s+", "", value).split(";") if "=" in part)
            i = _instance(tags.get("i", ""))
            if i is not None:
                seals.setdefault(i, []).append(tags.get("d", "").lower().strip("."))
        elif name == "arc-authentication-results":
            instance, _, report = value.partition(";")
            key, _, number = instance.partition("=")
            i = _instance(number) if key.strip().lower() == "i" else None
            if i is not None:
                reports.setdefault(i, []).append(report)
    why = "no ARC set sealed by a trusted sealer"
    # One seal and one report per instance, else the set is not what its sealer wrote (RFC 8617 5.2).
    for i in sorted((i for i, ds in seals.items() if len(ds) == 1 and len(reports.get(i, ())) == 1), reverse=True):
        sealer = seals[i][0]
        if not any(sealer == t or sealer.endswith("." + t) for t in trusted):
            continue
        authserv, results = _results(_strip_comments(reports[i][0]))
        method = _passed_for(results, from_domain)
        if method:
            return True, f"{method}=pass by {authserv} in ARC set {i}, sealed by {sealer}"
        why = f"no DKIM or DMARC pass for From's domain in ARC set {i}, sealed by {sealer}"
    return False, why


def authentication_passes(header: str, trusted_ids: Sequence[str], from_addr: str,
                          arc_headers: Sequence[tuple[str, str]] = (), arc_sealers: Sequence[str] = (),
                          relay_domains: Sequence[str] = ()) -> tuple[bool, str]:
    """Whether one Authentication-Results value is trusted and shows DKIM/DMARC pass for From: its own
    results, or, where it says the mail's ARC chain passed, the report of a sealer in `arc_sealers`.

    `relay_domains`: the domains the list that relayed the mail signs and sends as (our own, for our own
    list, ticketd.domain.own_list). A pass for one of them is the list's, whoever wrote the mail: a
    From in such a domain is vouched for only by a sealer's report of what reached the list.
    """
    authserv, results = _results(_strip_comments(header or ""))
    if authserv not in {t.lower() for t in trusted_ids}:
        return False, f"topmost Authentication-Results is from {authserv or 'nobody'!r}, not a trusted authserv-id"
    from_domain = from_addr.rsplit("@", 1)[-1].lower()
    # From's domain is not named: the reason is kept in histories that erasure (`ticketd forget`) may leave.
    if any(_aligned(domain, from_domain) for domain in relay_domains):
        why = f"Authentication-Results by {authserv} speaks for our own list, which relayed the mail as ours"
    else:
        method = _passed_for(results, from_domain)
        if method:
            return True, f"{method}=pass by {authserv}"
        why = f"Authentication-Results by {authserv} shows no DKIM or DMARC pass for From's domain"
    if arc_sealers and any(method == "arc" and result == "pass" for method, result, _ in results):
        passed, arc_why = _arc_passes(arc_headers, arc_sealers, from_domain)
        if passed:
            return True, f"{arc_why}; the ARC chain verified by {authserv}"
        return False, f"{why}, and {arc_why}"
    return False, why


def vouched_for(topmost: str | None, trusted_ids: Sequence[str], from_addr: str,
                arc_headers: Sequence[tuple[str, str]] = (), arc_sealers: Sequence[str] = (),
                relay_domains: Sequence[str] = ()) -> tuple[bool, str]:
    """Whether our MTA vouches for From (the topmost Authentication-Results, see above), and why or why not."""
    if not topmost:
        return False, "the mail has no Authentication-Results"
    return authentication_passes(topmost, trusted_ids, from_addr, arc_headers, arc_sealers, relay_domains)


def agent_authority(*, from_addr: str | None, from_count: int, reply_fingerprint: str | None,
                    agent_emails: list[str] | tuple[str, ...] | set[str],
                    proof: tuple[bool, str] | None = None) -> Verdict:
    """The agent whose mail this is, or None with the reason it is not an agent's.

    `proof`: whether our MTA vouches for From, and why (vouched_for), when agent_auth asks; else None."""
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
    if proof is not None:
        passed, why = proof
        if not passed:
            return Verdict(None, f"From claims agent {sender} but {why}",
                           f"our mail server did not vouch for it ({why})")
        return Verdict(sender, f"signed reply address of {sender}; {why}")
    return Verdict(sender, f"signed reply address of {sender}")
