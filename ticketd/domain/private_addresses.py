"""Agents' own addresses taken out of text a customer will read (pure).

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
