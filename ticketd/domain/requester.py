"""Who a new ticket's customer is: its sender, or the person a contact form wrote for (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.headers import is_address, mailbox, parse_addresses

if TYPE_CHECKING:
    from ingest.parse import ParsedMail

# Where the requester's address came from, when not from From.
REPLY_TO, SENDER, ENVELOPE = "Reply-To", "Sender", "the envelope sender"


@dataclass(frozen=True)
class Requester:
    address: str                  # "" when the mail named no address to answer
    name: str | None
    from_reply_to: bool = False   # a route's `requester: reply_to` took it from Reply-To
    source: str | None = None     # None: From; else REPLY_TO, SENDER or ENVELOPE
    raw_from: str = ""            # From as written, for the history when it named no address

    def why(self) -> str | None:
        """The history's reason when the requester is not From's address, else None."""
        written = f"From: {self.raw_from}" if self.raw_from else "no From"
        if self.source in (SENDER, ENVELOPE):
            return f"the mail names no address in From ({written}): replies go to {self.source}, {self.address}"
        if not self.address:
            return (f"no address to answer: the mail names none in From ({written}), Sender or the envelope "
                    "sender; nothing is sent to the customer, and agents' public replies are refused")
        return None


def requester_of(from_addr: str | None, from_name: str | None, raw_from: str, reply_to: list[str],
                 reply_to_name: str | None, *, use_reply_to: bool,
                 not_a_customer: Callable[[str], bool], sender: str | None = None,
                 envelope_from: str | None = None) -> Requester:
    """From, unless a route said the mail comes from a contact form and Reply-To names someone else.

    A website's form sends as itself (`From: wordpress@example.com`) and
    puts the visitor in Reply-To, where replies belong (RFC 5322 3.6.2).
    Only an admin's route makes Reply-To the customer: anybody may write a
    Reply-To, and a person's own mail client setting one is still that
    person writing. Our own addresses and agents are never a customer; a
    mail without a usable Reply-To keeps its sender.

    A From that names no address (`From: John Smith`, or none at all) is
    no one to answer. The one who sent the mail is then Sender's mailbox
    (RFC 5322 3.6.2), else the SMTP envelope sender (RFC 5321 4.1.1.2, where
    bounces go; Return-Path for mail fetched by IMAP). Reply-To stays the
    admin's choice (PRODUCT.md: identity from From). With none of them an
    address, the requester is "": never a name, which a smarthost may take
    for a local mailbox of its own.
    """
    raw_from = " ".join(raw_from.split())[:320]
    name = from_name or (raw_from if raw_from and not from_addr else None)
    sender_found = Requester(from_addr, from_name) if from_addr else _fallback(
        sender, envelope_from, not_a_customer, name, raw_from)
    if not use_reply_to:
        return sender_found
    usable = [a for a in reply_to if a and a != from_addr and not not_a_customer(a)]
    if not usable:
        return sender_found
    return Requester(usable[0], reply_to_name if usable[0] == reply_to[0] else None, from_reply_to=True,
                     source=REPLY_TO, raw_from=raw_from)


def _fallback(sender: str | None, envelope_from: str | None, not_a_customer: Callable[[str], bool],
              name: str | None, raw_from: str) -> Requester:
    """Sender's address, else the envelope sender's, else none: for a From that named no address."""
    for source, address in ((SENDER, sender), (ENVELOPE, envelope_from)):
        address = mailbox((address or "").strip().strip("<>").strip())
        if is_address(address) and not not_a_customer(address):
            return Requester(address, name, source=source, raw_from=raw_from)
    return Requester("", name, raw_from=raw_from)


def requester_of_mail(parsed: ParsedMail, envelope_from: str | None, *, use_reply_to: bool,
                      not_a_customer: Callable[[str], bool]) -> Requester:
    """requester_of for a parsed mail and its envelope sender (None when unknown, as for a file)."""
    senders = parse_addresses([parsed.headers["sender"]]) if parsed.headers.get("sender") else []
    return requester_of(parsed.author, parsed.from_name, parsed.headers.get("from") or "", parsed.reply_to,
                        parsed.reply_to_name, use_reply_to=use_reply_to, not_a_customer=not_a_customer,
                        sender=senders[0][1] if senders else None, envelope_from=envelope_from)


def written_to(addresses: Iterable[str], names: Mapping[str, str | None],
               not_a_customer: Callable[[str], bool]) -> Requester:
    """The customer of a mail one of our addresses wrote: the first of its To, then Cc `addresses` who is
    not ours nor an agent (`not_a_customer`); else none ("").

    As Zammad does with mail from a system address: someone on the team
    wrote to a customer from the shared mailbox with support in Cc or Bcc,
    and the conversation is that customer's. Answering our own address
    would answer no one (ticketd never mails itself).
    """
    for address in dict.fromkeys(addresses):
        if not not_a_customer(address):
            return Requester(address, names.get(address))
    return Requester("", None)


def why_written_to(author: str, requester: str) -> str:
    """The `requester` event's reason for a mail our own address `author` wrote, `requester` its customer."""
    if requester:
        return (f"written from our own address {author} to {requester}, the first address it names that is not "
                "ours nor an agent's: replies go there, and no acknowledgement is sent")
    return (f"written from our own address {author} to none but our addresses and agents: no address to answer; "
            "nothing is sent to the customer, and agents' public replies are refused")
