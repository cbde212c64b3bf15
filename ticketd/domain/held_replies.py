"""What a mail's head says about the ticket it answers, read without parsing its body (pure).

For mail that could not be processed (quarantine): its MIME tree or its
text is what failed, its head is still the sender's and the thread's.
"""

from __future__ import annotations

import email.parser
from dataclasses import dataclass

from ingest.headers import decode_header_value, msgids, parse_addresses
from ingest.identity import head_of
from ingest.match import referenced_ids
from ticketd.domain.tags import find_tags

_HEAD_PARSER = email.parser.BytesParser()   # compat32: tolerant of the heads that quarantine sees

# The fields where a reply address of ours may stand (ticketd.prepare.recipients reads the same).
_RECIPIENT_FIELDS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")


@dataclass(frozen=True)
class ReplyClues:
    """Who wrote a mail and how it names a ticket: PRODUCT.md's threading clues, from the head alone."""
    author: str | None              # From's address, lower case
    recipients: tuple[str, ...]     # envelope first, then the head's recipient fields
    referenced: tuple[str, ...]     # In-Reply-To, then References from its end (ingest.match.referenced_ids)
    tags: tuple[int, ...]           # the ticket tags of its Subject


def reply_clues(raw: bytes, envelope_to: list[str]) -> ReplyClues:
    """The threading clues of a stored mail (its bytes, or their start) and its envelope recipients."""
    msg = _HEAD_PARSER.parsebytes(head_of(raw) + b"\n\n", headersonly=True)

    def values(name: str) -> list[str]:
        return [decode_header_value(v) for v in msg.get_all(name, [])]

    authors = [address for _name, address in parse_addresses(values("from"))]
    written_to = [address for name in _RECIPIENT_FIELDS for _n, address in parse_addresses(values(name))]
    return ReplyClues(
        author=authors[0].lower() if authors else None,
        recipients=tuple(dict.fromkeys(a.lower() for a in [*envelope_to, *written_to] if a)),
        referenced=tuple(referenced_ids(msgids(" ".join(values("in-reply-to"))),
                                        msgids(" ".join(values("references"))))),
        tags=tuple(find_tags(" ".join(values("subject")))),
    )
