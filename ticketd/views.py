"""Read models for the CLI: tickets, messages, events, quarantine, outbox and the desk's status as JSON-ready dicts."""

from __future__ import annotations

import email
import json
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.headers import parse_addresses
from ingest.parse import decode_header_value
from outbound.attachments import MARKER, marked_files
from ticketd.clock import iso, utcnow
from ticketd.domain.erase import ERASED_TEXT
from ticketd.domain.search import snippet
from ticketd.domain.statuses import Status
from ticketd.pidlock import pid_path, probe
from ticketd.store import outbox as outbox_store
from ticketd.store import read_models as rows_of
from ticketd.store import tickets as store
from ticketd.store.db import reading
from ticketd.store.merge import merged_sources

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketd.settings import Settings


def _ticket_summary(row, people: list[dict], merged_from: list[int]) -> dict:
    """The top-level fields of a ticket, the same in `tickets list` and `tickets show` (PRODUCT.md)."""
    return {
        "id": row["id"],
        "tag": f"[#{row['id']}]",
        "subject": row["subject"],
        "status": row["status"],
        "priority": row["priority"],
        "type": row["type"],
        "requester": row["requester"],
        "followers": [p["email"] for p in people if p["role"] == "follower"],
        "assignee": row["assignee"],
        "group": row["group_name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "closed_at": iso(row["closed_at"]),
        "source": row["source"],
        "scale": row["scale"],
        "reproducible": row["reproducible"],
        "postponed_until": iso(row["postponed_until"]),
        "dev": {"engineer": row["dev_engineer"], "tracker_key": row["dev_tracker_key"],
                "due": iso(row["dev_due"])} if row["dev_engineer"] else None,
        "merged_into": row["merged_into"],
        "merged_from": merged_from,
        "participants": [{"email": p["email"], "role": p["role"], "name": p["name"],
                          "bounced": p["bounced_at"] is not None} for p in people],
    }


def list_tickets(engine: Engine, status: str | None = None, limit: int | None = None,
                 terms: Sequence[str] = (), **filters) -> list[dict]:
    """Tickets, newest first; `filters` as rows_of.ticket_rows takes them.

    With search `terms` (ticketd.domain.search.search_terms), each ticket
    also has `hit`: its newest message holding one of them, as `message_id`
    and a `snippet` around the term, or None when only the subject, a name,
    an address or a file's name held them.
    """
    hits = {}
    with reading(engine) as conn:
        rows = rows_of.ticket_rows(conn, status, limit, terms=terms, **filters)
        ids = [r["id"] for r in rows]
        people: dict[int, list[dict]] = {i: [] for i in ids}
        merged: dict[int, list[int]] = {}
        if ids:
            for p in rows_of.participant_rows(conn, ids):
                people[p["ticket_id"]].append(dict(p))
            # Merges are rare: the chain is walked only for a ticket something was merged into.
            merged = {i: merged_sources(conn, i) for i in rows_of.merge_targets(conn, ids)}
            if terms:
                hits = rows_of.newest_hits(conn, ids, terms)
    listed = [_ticket_summary(r, people[r["id"]], merged.get(r["id"], [])) for r in rows]
    if terms:
        for ticket in listed:
            hit = hits.get(ticket["id"])
            ticket["hit"] = ({"message_id": hit["id"], "snippet": snippet(hit["full_text"], list(terms))}
                             if hit else None)
    return listed


def show_ticket(engine: Engine, ticket_id: int) -> dict | None:
    """One ticket with its messages (and their attachments) and history."""
    with reading(engine) as conn:
        row = store.get_ticket(conn, ticket_id)
        if row is None:
            return None
        people = store.participants_of(conn, ticket_id)
        msgs = rows_of.message_rows(conn, ticket_id)
        atts: dict[int, list[dict]] = {m["id"]: [] for m in msgs}
        if msgs:
            for a in rows_of.attachment_rows(conn, list(atts)):
                atts[a["message_id"]].append({
                    "filename": a["filename"], "size": a["size"], "sha256": a["sha256"],
                    "content_type": a["content_type"], "inline": bool(a["inline"]),
                })
        evts = rows_of.event_rows(conn, ticket_id)
        # Tickets merged into this one brought their messages; the mail
        # ticketd sent on them stays theirs (its Message-ID names them) and
        # is shown here too, so the conversation reads whole.
        sources = merged_sources(conn, ticket_id)
        sent = [r for t in (ticket_id, *sources) for r in rows_of.outbox_rows(conn, t)]
        sizes = rows_of.file_sizes(conn, {sha for r in sent for sha in marked_files(bytes(r["raw"]))})
    out = _ticket_summary(row, people, sources)
    incoming = [{
        "id": m["id"],
        "direction": m["direction"],
        "message_id": m["message_id"],
        "from": m["from_addr"],
        "from_name": m["from_name"],
        "to": json.loads(m["to_addrs"] or "[]"),
        "cc": json.loads(m["cc_addrs"] or "[]"),
        "subject": m["subject"],
        "text": m["text"],
        "full_text": m["full_text"],
        "internal": bool(m["internal"]),
        "auto_generated": bool(m["auto_generated"]),
        "author_role": m["author_role"],
        "matched_by": m["matched_by"],
        "created_at": iso(m["created_at"]),
        "attachments": atts[m["id"]],
    } for m in msgs]
    # One conversation in time order, by the stored times (the printed ones
    # drop the fraction of a second); a mail in comes before what it caused,
    # which was written in its transaction at the same time.
    timeline = [(m["created_at"], False, shown) for m, shown in zip(msgs, incoming, strict=True)]
    timeline += [(row["created_at"], True, _outgoing(row, sizes)) for row in sent]
    timeline.sort(key=lambda entry: (entry[0] or datetime.min, entry[1]))
    out["messages"] = [shown for _, _, shown in timeline]
    out["events"] = [{
        "at": iso(e["at"]), "actor": e["actor"], "kind": e["kind"], "from": e["from_value"],
        "to": e["to_value"], "reason": e["reason"], "message": e["message_id"], "rules_hash": e["rules_hash"],
    } for e in evts]
    return out


# The mail that carries an agent's own words, sent under the agent's name; the rest is ticketd's.
_AGENTS_WORDS = ("requester/agent_reply", "requester/solution_proposed", "agent/internal_note")


def _outgoing(row, sizes: dict[str, int]) -> dict:
    """An outbox row as a message of the ticket (direction out), with the files it carries."""
    raw = bytes(row["raw"])
    said = _what_it_said(raw, sizes) if raw else _erased_words()
    return {
        "id": None,
        "outbox_id": row["id"],
        "direction": "out",
        "message_id": row["message_id"],
        "from": said["from"],
        "from_name": said["from_name"],
        "to": [row["recipient"]],
        "cc": [],
        "subject": said["subject"],
        "text": said["text"],
        "full_text": said["text"],
        # Mail to agents is never shown to a customer; notes least of all.
        "internal": row["template"].startswith("agent/"),
        "auto_generated": bool(row["automatic"]),
        "author_role": "agent" if row["template"] in _AGENTS_WORDS else "system",
        "matched_by": None,
        "template": row["template"],
        "state": row["state"],
        "sent_at": iso(row["sent_at"]),
        "last_error": row["last_error"],
        "created_at": iso(row["created_at"]),
        "attachments": said["attachments"],
    }


def _erased_words() -> dict:
    """A sent mail whose bytes `forget` erased keeps its row (to whom, when) and nothing of what it said: it
    reads as an erased incoming mail does (README.md, Erasure), not as a mail from "" without subject or words."""
    return {"from": None, "from_name": None, "subject": None, "text": ERASED_TEXT, "attachments": []}


def _what_it_said(raw: bytes, sizes: dict[str, int]) -> dict:
    """From, subject, text and files of a mail ticketd sent, read from its bytes."""
    msg = email.message_from_bytes(raw)
    # Parsed before its encoded words are read: "Müller, Anna" decoded first is two mailboxes, "Müller" one.
    from_name, from_addr = (parse_addresses([msg.get("From", "")]) or [("", "")])[0]
    files = [{"filename": part.get_filename() or "", "size": sizes.get(str(part[MARKER]).strip(), 0),
              "sha256": str(part[MARKER]).strip(), "content_type": part.get_content_type(), "inline": False}
             for part in msg.walk() if part[MARKER]]
    body = next((part for part in msg.walk() if part.get_content_type() == "text/plain"), None)
    text = body.get_payload(decode=True).decode(body.get_content_charset() or "utf-8", "replace") if body else ""
    return {"from": from_addr, "from_name": from_name or None, "subject": decode_header_value(msg.get("Subject", "")),
            "text": text.replace("\r\n", "\n"), "attachments": files}


def list_quarantine(engine: Engine, dismissed: bool | None = False) -> list[dict]:
    """Quarantined mail, oldest first: not dismissed, dismissed (True), or all (None)."""
    with reading(engine) as conn:
        rows = rows_of.quarantined_rows(conn, dismissed)
    return [{
        "id": r["id"], "received_at": iso(r["received_at"]), "reason": r["reason"],
        "message_id": r["message_id"], "size": r["size"], "source": r["source"], "attempts": r["attempts"],
        **_dismissal(r),
    } for r in rows]


def _dismissal(row) -> dict:
    """Who dismissed a quarantined or failed mail, when and why (all None when nobody did)."""
    return {"dismissed_at": iso(row["dismissed_at"]), "dismissed_by": row["dismissed_by"],
            "dismiss_reason": row["dismiss_reason"]}


def list_outbox(engine: Engine, states: Sequence[str]) -> list[dict]:
    """Outbox rows in these states, newest first, without the mail's bytes."""
    with reading(engine) as conn:
        rows = outbox_store.listed_rows(conn, states)
    return [{
        "id": r["id"], "ticket_id": r["ticket_id"], "template": r["template"], "recipient": r["recipient"],
        "message_id": r["message_id"], "automatic": bool(r["automatic"]), "state": r["state"],
        "attempts": r["attempts"], "last_error": r["last_error"], "created_at": iso(r["created_at"]),
        "next_attempt_at": iso(r["next_attempt_at"]), "sent_at": iso(r["sent_at"]), **_dismissal(r),
    } for r in rows]


# How long after a save `ticketd status` waits before it holds the daemon to the file: the daemon's watcher
# looks each second and loads a file left unchanged for half a second (ticketd/rules_watch.py).
RULES_SETTLE_SECONDS = 5.0


def daemon_status(data_dir: Path) -> dict:
    """Whether a `ticketd run` holds the lock of this data_dir, its pid, and since when it runs."""
    path = pid_path(data_dir)
    holder = probe(path)
    shown = {"running": holder.running, "pid": holder.pid, "started_at": None, "up_seconds": None}
    if holder.running:
        try:   # `ticketd run` writes its pid into the file once, as it starts (ticketd/pidlock.py)
            started = path.stat().st_mtime
        except OSError:
            started = None
        if started is not None:
            shown["started_at"] = iso(datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None))
            shown["up_seconds"] = round(max(0.0, time.time() - started), 1)
    if holder.error:
        shown["error"] = holder.error
    return shown


def disk_status(settings: Settings) -> list[dict]:
    """Room left on each file system the desk writes to: data_dir's, and a SQLite database's.

    Each is shown once, with what it holds (`data_dir`, `database` or both).
    """
    from ticketd.store.errors import database_of

    places = {"data_dir": Path(settings.data_dir)}
    driver, database = database_of(settings.database_url) or ("", None)
    if driver.startswith("sqlite") and database and database != ":memory:":
        places["database"] = Path(database).parent
    shown: dict[int | str, dict] = {}
    for role, place in places.items():
        place = place.absolute()
        existing = next(p for p in [place, *place.parents] if p.exists())   # data_dir is made at the start
        try:
            device, fs = existing.stat().st_dev, os.statvfs(existing)
        except OSError as exc:
            shown[role] = {"path": str(place), "holds": [role], "error": exc.strerror or str(exc)}
            continue
        if device in shown:
            shown[device]["holds"].append(role)
            continue
        shown[device] = {"path": str(place), "holds": [role], "free_bytes": fs.f_bavail * fs.f_frsize,
                         "total_bytes": fs.f_blocks * fs.f_frsize, "read_only": bool(fs.f_flag & os.ST_RDONLY)}
    return list(shown.values())


def rules_status(rules_file: Path, data_dir: Path | None = None, daemon: dict | None = None) -> dict:
    """Whether the rules file on disk is one the daemon takes, its errors when not, and whether the running
    daemon follows it (`in_force`: None when that cannot be told).

    A running daemon keeps the rules it loaded before an edit it refuses
    (errors, or no agents where it has some), and says so only in its
    log: the admin who saved the file learns it here too.
    """
    from ticketd.rules_file import RulesError, load_rules
    from ticketd.rules_in_force import rules_in_force

    shown = {"file": str(rules_file), "valid": True, "errors": [], "in_force": None}
    try:
        loaded = load_rules(rules_file)
    except RulesError as exc:
        return {**shown, "valid": False, "errors": exc.errors}
    shown["agents"], shown["groups"] = len(loaded.agents), len(loaded.groups)
    if data_dir is None or not (daemon or {}).get("running") or daemon.get("up_seconds") is None:
        return shown
    noted = rules_in_force(data_dir)
    now = time.time()
    try:
        saved_ago = now - Path(rules_file).stat().st_mtime
    except OSError:
        return shown
    # A note from before this daemon started is another's (an older ticketd's, which wrote none); a file saved
    # moments ago may not have been looked at yet (the watcher polls each second and waits for it to settle).
    if noted is not None and noted.noted_at >= now - daemon["up_seconds"] - 1 and saved_ago >= RULES_SETTLE_SECONDS:
        shown["in_force"] = noted.digest == loaded.digest
    return shown


def desk_status(engine: Engine, data_dir: Path) -> dict:
    """`ticketd status`: the daemon, the queues (mail waiting, mail to send, timers) and the tickets by status."""
    now = utcnow()
    with reading(engine) as conn:
        counts = rows_of.desk_counts(conn, now)

    def age(since) -> float | None:
        return None if since is None else round(max(0.0, (now - since).total_seconds()), 1)

    raw, out = counts.raw_by_state, counts.outbox_by_state
    return {
        "at": iso(now),
        "daemon": daemon_status(data_dir),
        "inbox": {"waiting": raw.get("received", 0), "processing": raw.get("processing", 0),
                  "quarantined": raw.get("quarantined", 0), "done": raw.get("done", 0),
                  "oldest_waiting_seconds": age(counts.oldest_waiting_raw)},
        "outbox": {"pending": out.get("pending", 0), "sending": out.get("sending", 0),
                   "failed": out.get("failed", 0), "sent": out.get("sent", 0),
                   "oldest_unsent_seconds": age(counts.oldest_pending_outbox)},
        "tickets": {**{s.value: counts.tickets_by_status.get(s.value, 0) for s in Status},
                    "unassigned": counts.unassigned_open},
        # Open, unassigned and in no group (no route gave one, or the rules lost theirs): nobody takes them.
        "no_group": {"open": counts.no_group_open, "ids": counts.no_group_ids},
        "timers": {"armed": counts.timers_armed, "overdue": counts.timers_overdue,
                   "held": counts.timers_held,
                   "next_due_at": iso(counts.next_timer_due)},
    }
