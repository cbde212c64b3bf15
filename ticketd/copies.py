"""A mail kept already whose bytes changed on the way (so its dedupe key differs): found, not added twice.

The dedupe key (ingest/parse.py `dedupe_key`) hashes the body as it came.
A relay that re-encodes it, say a server without 8BITMIME turning 8-bit
text into quoted-printable (RFC 6152 section 3), or base64 wrapped at
another width, gives the same mail another key: the SMTP route and an IMAP
mailbox fed by such a relay then each hand it in. Issue 2 wants it stored
once. Once parsed the two copies say the same, so processing compares
what was parsed: the raw row is kept (nothing is dropped) and marked done
with the ticket, and no second message, notice or reopening follows.

A mailing list the support address is on relays a customer's mail copied
to it with the same Message-ID, Date and author, but with the list's footer
after the words (Mailman's msg_footer, Google Groups' "You received this
message because…"): the copy that came through the list may say more at
its end, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ingest.identity import Identity, identity, same_mail
from ingest.parse import ParsedMail
from ticketd.domain.tags import same_subject
from ticketd.store import tickets as store


class MailRead(Protocol):
    """What the comparison needs of a mail: ticketd.prepare.Prepared, or a file `ticketd rules test` read."""
    raw: bytes
    parsed: ParsedMail
    html: str | None                # sanitised as for agents (ingest.html_clean)
    attachments: list[dict]         # ticketd.prepare.attachment_rows


# At most this many words a list's footer adds: Google Groups' is about
# 50, Mailman's default five lines fewer. More is a mail of its own.
LIST_FOOTER_WORDS = 120


@dataclass(frozen=True)
class KeptCopy:
    message_row_id: int
    ticket_id: int


def _words(text: str | None) -> list[str]:
    # Whitespace aside: a re-encoding may change line ends and the spaces at them (RFC 2045 section 6.7 (3)).
    return (text or "").split()


def _addresses(addresses: list[str]) -> set[str]:
    return {address.lower() for address in addresses}


def _same_words(kept_text: str | None, text: str | None, kept: Identity | None, new: Identity | None) -> bool:
    """One text, or (given the identities) one writer's words and a list's footer after them in the copy
    the list relayed."""
    kept_words, words = _words(kept_text), _words(text)
    if kept_words == words:
        return True
    if kept is None or new is None:
        return False
    longer, shorter, relayed = ((kept_words, words, kept) if len(kept_words) > len(words)
                                else (words, kept_words, new))
    return (relayed.through_list and bool(shorter) and longer[:len(shorter)] == shorter
            and len(longer) - len(shorter) <= LIST_FOOTER_WORDS)


def says_the_same(prep: MailRead, kept: dict, kept_raw: bytes, kept_files: list[tuple[str, str]]) -> bool:
    """Whether the prepared mail is the kept message again: one Message-ID and From (the lookup), one Date
    and author (`same_mail`), one subject, the same To and Cc, one text and HTML (or a list's footer more in
    the list's copy), and the same files under the same names. Anything a relay leaves alone that differs
    makes it another mail."""
    parsed = prep.parsed
    kept_identity, new_identity = identity(kept_raw), identity(prep.raw)
    footer_only = (_words(kept["full_text"]) != _words(parsed.text)
                   and _same_words(kept["full_text"], parsed.text, kept_identity, new_identity))
    return (same_subject(kept["subject"] or "", parsed.subject or "")
            and _addresses(kept["to_addrs"]) == _addresses(parsed.to)
            and _addresses(kept["cc_addrs"]) == _addresses(parsed.cc)
            and _same_words(kept["full_text"], parsed.text, kept_identity, new_identity)
            # The footer goes into the HTML too, where the words' end is the markup's.
            and (footer_only or _words(kept["html"]) == _words(prep.html))
            and sorted(kept_files) == sorted((a["filename"], a["sha256"]) for a in prep.attachments)
            and same_mail(kept_identity, new_identity))


def kept_copy(conn, prep: MailRead, copies: list[dict]) -> KeptCopy | None:
    """The message this mail already is among `copies` (store.kept_copies: its Message-ID, from its sender),
    kept from another delivery of it; None when it is new."""
    words = _words(prep.parsed.text)
    for kept in copies:
        kept_words = _words(kept["full_text"])
        if kept_words[:len(words)] != words and words[:len(kept_words)] != kept_words:
            continue   # most often: the Message-ID reused for another mail; no more to read
        kept_raw = store.raw_bytes(conn, kept["raw_mail_id"])
        if kept_raw is None:
            continue   # its bytes erased: the Date cannot be compared, and a mail kept twice beats one lost
        if says_the_same(prep, kept, kept_raw, store.attachment_files(conn, kept["id"])):
            return KeptCopy(kept["id"], kept["ticket_id"])
    return None
