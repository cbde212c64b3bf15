"""Signals that a mail was written by a machine, so we must not answer it (RFC 3834)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ingest.headers import ascii_domain
from ticketd.domain.tags import TAG_RE

# The mailbox every mail server answers for (RFC 5321 section 4.5.1).
POSTMASTER = "postmaster"

# A list relays what a person wrote (a customer answering through a Google Group): never answered, so
# the list's readers get no automatic mail, but its words are a person's (ticketd.customer_mail).
LIST_REASON = "sent through a mailing list (List-Id or Precedence: list)"

_ROBOT_LOCALPARTS = ("mailer-daemon", POSTMASTER, "noreply", "no-reply", "do-not-reply", "donotreply")


def auto_generated_reason(
    headers: Mapping[str, str],
    envelope_from: str | None,
    from_addr: str | None,
    content_type: str = "",
) -> str | None:
    """Why this mail must not be answered, or None if a human may be waiting.

    `headers` maps lower-case names to values. `envelope_from` is the SMTP
    MAIL FROM or the Return-Path: "" (the null path, RFC 5321 section 4.5.5)
    marks a bounce; None means we do not know it.
    """
    auto = _auto_submitted(headers.get("auto-submitted", ""))
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"  # RFC 3834 section 5
    if is_null_path(envelope_from):
        return "null return path"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    if precedence == "list" or headers.get("list-id"):
        return LIST_REASON
    if headers.get("list-unsubscribe"):
        return "bulk mail (List-Unsubscribe)"
    if headers.get("x-auto-response-suppress"):
        return "X-Auto-Response-Suppress"
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        return "X-Autoreply"
    if reason := _filter_reason(headers, from_addr):
        return reason
    subject = headers.get("subject", "")
    if (m := _AUTO_REPLY_SUBJECT.match(subject)) and TAG_RE.search(subject, m.end()):
        return f"an automatic reply's subject ({m.group(0).strip()})"
    if content_type.lower().startswith("multipart/report"):
        return "delivery or disposition report"  # RFC 6522
    # A subaddress tag says which order or list a robot sends about (noreply+order-4711@, RFC 5233).
    local = (from_addr or "").split("@", 1)[0].lower().split("+", 1)[0]
    if local in _ROBOT_LOCALPARTS or local.startswith("mailer-daemon"):
        return f"robot sender {from_addr}"
    return None


# RFC 5322 section 3.2.2: a comment, which RFC 3834 section 5 allows around the keyword ("no (by hand)").
_COMMENT = re.compile(r"\([^()]*\)")


def _auto_submitted(value: str) -> str:
    """The keyword of an Auto-Submitted field, lower case, without its parameters and comments."""
    if "(" in value:
        value = _COMMENT.sub(" ", value)
    return value.split(";")[0].strip().lower()


def is_null_path(path: str | None) -> bool:
    """Whether a reverse-path (MAIL FROM, Return-Path) is the null one a bounce is sent with.

    RFC 5321 section 4.5.5 writes it `<>`; sendmail and others deliver such
    mail with `Return-Path: <MAILER-DAEMON>`, a name without a domain, which
    no mailbox is. None: the path is unknown.
    """
    if path is None:
        return False
    bare = path.strip("<> \t")
    return bare == "" or bare.lower() == "mailer-daemon"


# The subjects out-of-office answers write when their mail carries no RFC 3834 field (Exchange's and
# Outlook's older OOF rules, mobile clients, "rules" that answer by template): the prefix they put before
# the subject they answer, in the languages customers and agents write in. FreeScout checks the same.
# Only before a subject of ours (its [#N] tag): a person's new question may start "Auto-reply: stops
# working after the update", and would get no acknowledgement.
# Lotus Notes and older clients write "I am out of the office:", others "Vacation:" or "Abwesend:".
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto[- ]?reply|(?:i am |i[’']m |i will be )?out of (?:the )?office"
    r"(?: reply| autoreply| auto[- ]?reply)?|vacation(?: reply| message| auto[- ]?reply)?|on vacation|absence"
    r"|automatische antwort|abwesenheitsnotiz|abwesenheit|abwesend|r[ée]ponse automatique"
    r"|respuesta autom[áa]tica|fuera de la oficina|risposta automatica|fuori sede|resposta autom[áa]tica"
    r"|автоматический ответ|autosvar|automatisk svar|automatisch antwoord|afwezig|odpowied[źz] automatyczna"
    r"|automaattinen vastaus|automatick[áa] odpov[ěe][ďd]|自动回复|自動回覆|自動応答)"
    r"\s*[:：]", re.IGNORECASE)


def is_our_address(address: str | None, support: str, extra: Iterable[str]) -> bool:
    """Whether an address is ticketd's own: the support address, its +token forms, an smtp.extra_addresses
    one, and postmaster at the support domain (which the receiver accepts, RFC 5321 section 4.5.1).

    Domains compare in A-labels: the support address is kept so (ticketd.settings), and a customer may
    Cc `hilfe@bücher.example`, the same mailbox (RFC 5890 section 2.3.2.1), which the receiver takes too.
    """
    if not address:
        return False
    address, support = _a_labels(address), _a_labels(support)
    local, domain = support.split("@", 1)
    return address in (support, f"{POSTMASTER}@{domain}") or (
        address.startswith(local + "+") and address.endswith("@" + domain)) or address in {_a_labels(a) for a in extra}


def _a_labels(address: str) -> str:
    return ascii_domain(address.strip().lower()).lower()


def cap_mailbox(address: str) -> tuple[str, str]:
    """The mailbox the cap on automatic mail counts an address as: (local part without subaddress, domain).

    RFC 5233: `cust+detail@domain` is delivered to cust's mailbox, so an
    auto-responder answering from a new detail each time (cust+4711@,
    cust+4712@) is one mailbox looping, and the hourly cap counts them
    together. Only the cap does: each address stays a person of its own.
    "+" is the separator RFC 5233 names and most servers use; a local part
    that starts with it has no mailbox name before it, and is taken whole.
    """
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain, ""
    return local.split("+", 1)[0] or local, domain


def own_address_reason(address: str) -> str:
    """Why a person's mail From one of our addresses is not answered (PRODUCT.md: never answers its own mail)."""
    return f"from our own address {address}: ticketd never answers its own addresses"


# From a word's start only, and no "@" before the one that splits it: tried at every character of a long
# header value, it took time growing with the square of its length.
_ADDRESS = re.compile(r"(?<![^\s<>,;\"])[^\s<>,;\"@]+@[^\s<>,;\"]+")


def _filter_reason(headers: Mapping[str, str], from_addr: str | None) -> str | None:
    """A mail filter's or list's loop marker: its out-of-office answers carry no RFC 3834 field.

    X-Loop is what procmail recipes (formail -A "X-Loop: …", the vacation
    recipe in procmailex(5)) and list managers (SmartList, Mailman's
    resends) add to what they send, naming themselves: an X-Loop naming the
    sender, or no address at all, is a machine's answer. One naming another
    address is a forwarding recipe's (`info@` passed on to support) or a
    list's relaying a person's mail: the person still wrote it (a list is
    known by its List-Id and Precedence). ticketd sends no X-Loop.
    Exchange and Outlook mark what an inbox rule writes (an "automatic
    reply" or a forward) `X-MS-Exchange-Generated-Message-Source: Mailbox
    Rules Agent`, and add `X-MS-Exchange-Inbox-Rules-Loop` naming the
    mailbox whose rule acted. A redirect also adds the latter but keeps the
    author's From, so it marks the mail only when it names the sender.
    """
    loop = headers.get("x-loop", "").strip()
    named = {a.lower() for a in _ADDRESS.findall(loop)}
    if loop and (not named or (from_addr or "").lower() in named):
        return f"X-Loop: {loop[:80]}"
    source = headers.get("x-ms-exchange-generated-message-source", "").strip()
    if source.lower().startswith("mailbox rules agent"):
        return "Exchange inbox rule (X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent)"
    rule_owners = _ADDRESS.findall(headers.get("x-ms-exchange-inbox-rules-loop", ""))
    if from_addr and from_addr.lower() in (owner.lower() for owner in rule_owners):
        return f"Exchange inbox rule of {from_addr} (X-MS-Exchange-Inbox-Rules-Loop)"
    return None
