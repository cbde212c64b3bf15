"""Mail our own list relayed: a Google Group or mailing list that is the support address itself; and which
address a list is.

Small teams often make support@ a Google Group (or a Mailman list) and point
ticketd at it. Every customer's mail then arrives with the group's List-Id,
Precedence: list and List-Unsubscribe, which say "a list relayed this" and
so "answer no one" (ticketd.domain.loops): no customer was acknowledged,
no Cc followed. A list whose address is ours relays to nobody but us; its
fields say nothing about who wrote, so they are not read as robot signals.

Such a list also rewrites From for a writer whose domain publishes a strict
DMARC policy (RFC 7489 section 6.3, p=quarantine/reject: yahoo.com,
aol.com, hotmail.com...): `"'Dana' via Support" <support@example.com>`, the
writer kept in X-Original-From (Google) or Reply-To (Mailman's
dmarc_moderation_action: munge_from). That From is our own address, so the
mail was answered to no one and had no customer. The writer is read again
from what the list kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from ingest.headers import parse_addresses
from ingest.parse import ParsedMail

# RFC 2369 and RFC 2919 fields a list adds, and the Precedence it sets; a writer's own Precedence: bulk stays.
_LIST_FIELDS = ("list-id", "list-post", "list-unsubscribe", "list-subscribe", "list-help", "list-archive",
                "list-owner", "mailing-list")
# One way to split: the address stops at "?", a blank or ">", and nothing goes past the next "<" (tried at
# each "<mailto:" of a hostile header, the old overlapping pattern took time growing with its length twice).
_MAILTO = re.compile(r"<mailto:([^<>?\s]{1,320})(?:[?\s][^<>]{0,2000})?>", re.IGNORECASE)
# RFC 2919 section 3: "<list-label.list-id-namespace>"; Google Groups and Mailman 3 write the list's
# address with its "@" as a dot (support@example.com: <support.example.com>).
_LIST_ID = re.compile(r"<([^<>\s]{1,500})>")
# Google: "'Dana' via Support"; Mailman: "Dana via Support".
_VIA = re.compile(r"\svia\s", re.IGNORECASE)


def _list_id(value: str) -> str | None:
    found = _LIST_ID.search(value)
    return found.group(1).lower() if found else None


def is_own_list(headers: Mapping[str, str], addresses: list[str], ours: Callable[[str], bool]) -> bool:
    """Whether the list that relayed the mail is one of our addresses (`addresses`: the support address and
    smtp.extra_addresses): its List-Post names one by mailto:, or its List-Id is one with "@" as a dot."""
    if any(ours(posted) for posted in _MAILTO.findall(headers.get("list-post", ""))):
        return True
    list_id = _list_id(headers.get("list-id", ""))
    return list_id is not None and list_id in {a.lower().replace("@", ".", 1) for a in addresses}


def relaying_list(headers: Mapping[str, str], addresses: list[str]) -> list[str]:
    """Those of `addresses` that are the list a mail came through: its List-Post names it by mailto:, or
    its List-Id is it with "@" as a dot."""
    posted = {a.lower() for a in _MAILTO.findall(headers.get("list-post", ""))}
    list_id = _list_id(headers.get("list-id", ""))
    return [a for a in addresses if a.lower() in posted or a.lower().replace("@", ".", 1) == list_id]


def robot_headers(headers: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The mail's fields (every value of each) without those our own list added, for the robot checks."""
    kept = {name: values for name, values in headers.items() if name not in _LIST_FIELDS}
    # The list's Precedence: list goes; a writer's own Precedence: bulk beside it stays.
    precedence = tuple(v for v in kept.pop("precedence", ()) if v.strip().lower() != "list")
    if precedence:
        kept["precedence"] = precedence
    return kept


def writer_again(parsed: ParsedMail, ours: Callable[[str], bool]) -> ParsedMail:
    """The mail as its writer sent it, when our own list put itself into From "via" the list; unchanged
    otherwise. X-Original-From first, else a single Reply-To, and never one of our addresses."""
    if not parsed.from_addr or not ours(parsed.from_addr) or not _VIA.search(parsed.from_name or ""):
        return parsed
    kept = parse_addresses([parsed.headers.get("x-original-from", "")])
    if not kept and len(parsed.reply_to) == 1:
        kept = [(parsed.reply_to_name or "", parsed.reply_to[0])]
    if len(kept) != 1 or ours(kept[0][1]):
        return parsed
    name, address = kept[0]
    if not name:   # "'Dana' via Support": the name before " via ", its quotes aside
        name = _VIA.split(parsed.from_name or "", maxsplit=1)[0].strip().strip("'\"")
    return replace(parsed, from_addr=address, from_name=name or None, author=address, co_authors=[])
