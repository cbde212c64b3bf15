"""Agents' own addresses taken out of text a customer will read, and their own files out of what it carries (pure).

PRODUCT.md: customers must never see "agents' private addresses". Headers
never carry them (replies go out From the support address), but an agent's
words can: most mail clients add a signature without the `-- ` line that
reply stripping recognises ("Bob Smith / bob@example.com / +1 555 ..."),
or an agent types a colleague's address. Each such address reads as the
support address instead, which is where the customer should write anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Not part of a longer address: no address character before it, and no
# more of a domain after it (bob@example.com must not eat bob@example.com.au).
_BEFORE = r"(?<![\w.+\-])"
_AFTER = r"(?![\w\-]|\.[\w\-])"


def withhold_addresses(text: str, addresses: Iterable[str], instead: str) -> str:
    """`text` with every one of `addresses` (any letter case) replaced by `instead`."""
    wanted = sorted({a.lower() for a in addresses if a and "@" in a and a.lower() != instead.lower()},
                    key=len, reverse=True)
    if not wanted or "@" not in text:
        return text
    pattern = re.compile(_BEFORE + "(?:" + "|".join(map(re.escape, wanted)) + ")" + _AFTER, re.IGNORECASE)
    return pattern.sub(instead, text)


# A contact card: what a mail client's "attach my vCard" adds to every mail (RFC 6350 section 10.1).
# It carries the agent's own address and phone, so it stays on the ticket (outbound.outbox).
_CONTACT_CARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
_CONTACT_CARD_NAMES = (".vcf", ".vcard")


def is_contact_card(filename: str, content_type: str) -> bool:
    """Whether a file is a contact card, by its media type or its name's extension."""
    return content_type.lower() in _CONTACT_CARD_TYPES or filename.lower().endswith(_CONTACT_CARD_NAMES)


# What a mail client adds to a signed mail to say who sent it, never part of what the mail says: the
# detached signature of multipart/signed (RFC 1847), an S/MIME one carrying the signer's certificate with
# their address (RFC 8551 section 3.5.3), an OpenPGP one their key's fingerprint (RFC 3156 section 5), and
# the public key Thunderbird attaches beside it, whose user ID is their name and address. It signs the
# agent's own mail, not ours, so it would prove nothing to the customer either.
_SIGNER_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                           "application/pgp-signature", "application/pgp-keys"})
_SIGNER_NAMES = (".p7s",)


def is_signers_file(filename: str, content_type: str) -> bool:
    """Whether a file is a mail's signature or its signer's key, by its media type or its name's extension."""
    return content_type.lower() in _SIGNER_TYPES or filename.lower().endswith(_SIGNER_NAMES)


# Outlook's winmail.dat ([MS-OXTNEF]) is the agent's whole mail once more: its body with everything the
# reply quoted (a notice, with the ticket's internal notes), which reply stripping took out of the text,
# and the sender's own properties. The files packed in it are listed apart (ingest.tnef) and go as
# themselves; the container never does (PRODUCT.md: customers never see internal notes).
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_TNEF_NAMES = ("winmail.dat", "win.dat")


def is_mail_container(filename: str, content_type: str) -> bool:
    """Whether a file is a winmail.dat, by its media type or, as gateways relabel it, its name."""
    return content_type.lower() in _TNEF_TYPES or filename.lower() in _TNEF_NAMES


def is_private_file(filename: str, content_type: str) -> bool:
    """Whether a file of an agent's mail is no file they send but their own: their contact card, their
    signature, their mail once more. It stays on the ticket and never reaches a customer (PRODUCT.md:
    no internal notes, no agents' private addresses)."""
    return (is_contact_card(filename, content_type) or is_signers_file(filename, content_type)
            or is_mail_container(filename, content_type))
