"""What of a ticket's conversation an agent's notice shows: its latest messages, each text cut to a readable size."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# An agent works the ticket from this mail alone (there is no web UI), but
# a mail of fifty messages is not read: older ones are counted, not shown.
SHOWN_MESSAGES = 10
HISTORY_MESSAGES = 50   # what `#history` asks for: the whole story, within reason
TEXT_CHARS = 8000
# How much of each text the store reads: TEXT_CHARS with room for leading
# blank lines, so a pasted multi-megabyte log is never carried into the
# assignment transaction, which holds SQLite's write lock.
FETCH_CHARS = TEXT_CHARS + 1000
# An agent's mail kept on the ticket, internal, that was neither applied nor sent to anyone
# (ticketd/agent_mail.py: the event that stored it says why). Quoted as an internal note it read as
# something the agent meant to say, commands never applied included.
NOT_SENT = {"commands_rejected": "refused commands, not sent",
            "commands_unchanged": "commands that changed nothing, not sent",
            # Someone on no mail of the ticket, writing through a forwarded address: their words are
            # theirs, not the customer's, in every quote of the conversation as in the first notice.
            "outsider_kept": "from someone not on the ticket, kept apart",
            # Threaded by what anyone may know, its From not vouched for by our mail server (customer_auth).
            "unvouched_kept": "its From not vouched for by our mail server, kept apart"}


@dataclass(frozen=True)
class Shown:
    """The conversation as the templates get it, and which shown messages have files."""
    messages: list[dict]                # oldest first
    omitted: int                        # earlier messages not shown
    attach_from: tuple[int, ...]        # ids of shown messages with attachments, newest first


def cut_text(head: str, length: int, limit: int = TEXT_CHARS) -> str:
    """The text stripped and cut to `limit` characters, ending in a marker that says how much is left out.

    `head` is the start of the text as read (all of it when `length`, the
    whole text's length in characters, is no longer).
    """
    whole = len(head) >= length
    body = head.strip() if whole else head.lstrip()
    total = len(body) if whole else length - (len(head) - len(body))
    shown = body[:limit]
    more = total - len(shown)
    return f"{shown}\n[… {more} more characters]" if more > 0 else shown


def _one_line(value: str | None) -> str | None:
    # A display name is printed on the message's header line: a line break
    # in it must not start a line that reads as another message.
    return " ".join(value.split()) if value else value


def entry(row: Mapping, files: Sequence[Mapping], kept_by: str | None = None,
          agent_names: Mapping[str, str] | None = None) -> dict:
    """One stored message as the templates see it; `kept_by` the kind of the event that kept it unsent.

    An agent's message shows the agent's rules.yaml name (`agent_names`, by address), whatever
    their mail client put in From, or nothing at all.
    """
    address = (row["from_addr"] or "").lower()
    name = (agent_names or {}).get(address) if row["author_role"] == "agent" else None
    return {
        "at": row["created_at"],
        "direction": row["direction"],
        "author_role": row["author_role"],
        "from": _one_line(row["from_addr"]),
        "from_name": _one_line(name or row["from_name"]),
        "internal": bool(row["internal"]),
        "not_sent": NOT_SENT.get(kept_by or "", ""),
        "auto_generated": bool(row["auto_generated"]),
        "text": cut_text(row["text"] or "", row["text_length"] or 0),
        "attachments": [{"filename": f["filename"], "size": f["size"]} for f in files],
    }


def shown_conversation(latest: Sequence[Mapping], total: int, files: Iterable[Mapping],
                       limit: int = SHOWN_MESSAGES, kept_by: Mapping[int, str] | None = None,
                       agent_names: Mapping[str, str] | None = None) -> Shown:
    """The last `limit` of `latest` (message rows, `text` maybe cut, with `text_length`), oldest first.

    `total` is how many messages the ticket has; `files` are attachment rows
    of those messages; `kept_by` the kinds of NOT_SENT events by message id;
    `agent_names` agents' names by address.
    """
    kept_by = kept_by or {}
    shown = sorted(latest, key=lambda row: row["id"])[-limit:]
    by_message: dict[int, list[Mapping]] = {}
    for row in files:
        by_message.setdefault(row["message_id"], []).append(row)
    return Shown(
        messages=[entry(row, by_message.get(row["id"], []), kept_by.get(row["id"]), agent_names) for row in shown],
        omitted=max(0, total - len(shown)),
        attach_from=tuple(row["id"] for row in reversed(shown) if by_message.get(row["id"])),
    )
