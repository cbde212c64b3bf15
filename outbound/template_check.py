"""Render every template and saved reply with sample values, so an admin's override is checked before mail needs it.

A template that fails when a mail needs it rolls that mail's whole change
back (templates/README.md): an override with a typo would quarantine
every customer mail that asks for it. `ticketd templates check` renders
them all first, with the variables templates/README.md documents.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from pathlib import Path

from outbound.render import CANNED, CANNED_NAME, DEFAULT_TEMPLATES, Renderer, TemplateError

_TICKET = dict(id=1042, subject="Printer on fire", status="open", priority="normal", type="bug",
               requester="cust@example.org", requester_name="Customer", assignee="alice@example.com",
               group_name="support", postponed_until=None, dev_engineer=None, dev_tracker_key=None, dev_due=None,
               created_at=datetime(2026, 1, 5, 9, 0), updated_at=datetime(2026, 1, 5, 9, 30))
_BASE = dict(ticket=_TICKET, tag="[#1042]", support_address="support@example.com", recipient="cust@example.org",
             recipient_name="Customer", timezone="Europe/Berlin")
_FILES = [dict(filename="screenshot.png", size=48213, content_type="image/png", attached=True),
          dict(filename="dump.zip", size=31457280, content_type="application/zip", attached=False)]
_CONVERSATION = [dict(at=datetime(2026, 1, 5, 9, 0), direction="in", author_role="customer",
                      from_name="Customer", internal=False, not_sent="", auto_generated=False, text="It is on fire.",
                      attachments=[dict(filename="screenshot.png", size=48213)], **{"from": "cust@example.org"}),
                 dict(at=datetime(2026, 1, 5, 9, 30), direction="in", author_role="agent", from_name="Alice",
                      internal=True, not_sent="", auto_generated=False, text="Checking with the vendor.",
                      attachments=[], **{"from": "alice@example.com"}),
                 dict(at=datetime(2026, 1, 5, 9, 40), direction="in", author_role="agent", from_name="Alice",
                      internal=True, not_sent="refused commands, not sent", auto_generated=False,
                      text="#status opne\n\nReplacing the fuser.", attachments=[], **{"from": "alice@example.com"})]
_PUBLIC = [dict(email="cust@example.org", name="Customer"), dict(email="boss@example.org", name="")]
_LINE = dict(id=1042, tag="[#1042]", subject="Printer on fire", status="open", priority="normal",
             requester="cust@example.org", group="support", created_at="2026-01-05 10:00",
             updated_at="2026-01-05 10:30", due_at="2026-01-06 10:30", overdue=False,
             address="support+token@example.com", take=None)

# What each shipped template gets beyond _BASE (templates/README.md, "The templates").
SAMPLES: dict[str, dict] = {
    "requester/ticket_opened": {},
    "requester/agent_reply": dict(text="Try turning it off.", agent_name="Alice", attachments=_FILES,
                                  like_address="support+like@example.com",
                                  dislike_address="support+dislike@example.com"),
    "requester/status_changed": dict(status="waiting_customer", reason="", decides=True, attachments=_FILES),
    "requester/solution_proposed": dict(text="Replace the fuser.", agent_name="Alice", attachments=_FILES,
                                        like_address="support+like@example.com",
                                        dislike_address="support+dislike@example.com"),
    "requester/waiting_reminder": dict(close_at=datetime(2026, 1, 9, 10, 30), status="waiting_customer"),
    "requester/ticket_closed": dict(reason="closed by Alice", closed_by="agent", rating="5 4 5"),
    "requester/rating_not_counted": dict(rating="10 10 10"),
    "agent/ticket_assigned": dict(agent_name="Alice", reason="round robin in support", conversation=_CONVERSATION,
                                  conversation_omitted=3, attachments=_FILES, public_recipients=_PUBLIC),
    "agent/customer_replied": dict(text="Still burning.", sender="boss@example.org", sender_name="Pat Boss",
                                   attachments=_FILES),
    "agent/timer_breached": dict(timer="respond_within 4h in new", reason="reassigned to bob@example.com",
                                 conversation=_CONVERSATION, conversation_omitted=0, attachments=_FILES,
                                 public_recipients=_PUBLIC),
    "agent/command_rejected": dict(errors=["#status opne: 'opne' is not a status."], text="#status opne",
                                   agent_name="Alice", as_note=True),
    "agent/command_unchanged": dict(reasons=["#close: ticket [#1042] is already closed"], text="#close",
                                    agent_name="Alice", as_note=True),
    "agent/assign_waiting": dict(line="#assign billing", group="billing", text="#assign billing", agent_name="Alice",
                                 why="carol@example.com is away; bob@example.com has 20 open tickets (max_open 20)",
                                 as_note=False),
    "agent/mail_not_applied": dict(reason="it was sent to another person's reply address", text="#close",
                                   agent_name="Bob", opened=1043),
    "agent/delivery_failed": dict(failed_recipient="cust@example.org", failed_template="requester/agent_reply",
                                  reason="550 5.1.1 no such user"),
    "agent/internal_note": dict(text="Check the fuser.", agent_name="Alice", attachments=_FILES),
    "agent/colleague_worked": dict(text="Please restart it.", agent_name="Bob", changes=["#status waiting_customer"],
                                   handed_to=None, taken=False, note="The fuser is worn.", attachments=_FILES),
    "agent/ticket_history": dict(agent_name="Alice", conversation=_CONVERSATION, conversation_omitted=0,
                                 attachments=_FILES),
    "agent/daily_summary": dict(ticket={}, tag="", recipient="alice@example.com", agent_name="Alice",
                                date="2026-01-06", timezone="Europe/Berlin", tickets=[_LINE], overdue=0,
                                unassigned=[dict(_LINE, take="#assign alice@example.com")], unassigned_total=1),
    "agent/desk_reply": dict(ticket={}, tag="", recipient="alice@example.com", agent_name="Alice", outcome="away",
                             away=True, since="2026-01-05 09:00 UTC", until="2026-01-19 00:00 UTC", open_tickets=3,
                             away_by_rules=False, error=None, line=None, desk_address="support+desk@example.com",
                             usage=["#away  (until you write #back)", "#back  (you take new tickets again)"]),
}
# The variables templates/README.md calls optional: often absent when a mail is sent (a reply without
# files has no `attachments`), so each template is also rendered without them.
OPTIONAL: dict[str, tuple[str, ...]] = {
    "requester/agent_reply": ("attachments",),
    "requester/solution_proposed": ("attachments",),
    "requester/status_changed": ("attachments",),
    "requester/waiting_reminder": ("status",),
    "requester/ticket_closed": ("closed_by", "rating"),
    "agent/ticket_assigned": ("reason", "text", "overdue", "conversation_omitted", "attachments"),
    "agent/customer_replied": ("attachments",),
    "agent/timer_breached": ("reason", "reminder", "handed_to", "conversation_omitted", "attachments",
                             "public_recipients"),
    "agent/internal_note": ("attachments",),
    "agent/ticket_history": ("attachments",),
    "agent/mail_not_applied": ("opened",),
    "agent/colleague_worked": ("note", "attachments"),
}
_FILES_OF = ("subject", "txt", "html")   # <name>.<file>.j2
CANNED_SAMPLE = dict(ticket=_TICKET, tag="[#1042]", agent_name="Alice", support_address="support@example.com")


def shipped_templates() -> list[str]:
    """Every template name ticketd sends, as `<audience>/<event>`."""
    return sorted(str(p.relative_to(DEFAULT_TEMPLATES)).removesuffix(".txt.j2")
                  for p in DEFAULT_TEMPLATES.glob("*/*.txt.j2"))


def partial_overrides(override_dir: Path | None) -> list[str]:
    """One line per template templates_dir overrides in part, saying what its mail is made of."""
    if override_dir is None:
        return []
    renderer = Renderer(override_dir)
    lines = []
    for name in shipped_templates():
        mine = renderer.overridden(name)
        if not mine or mine == set(_FILES_OF):
            continue
        has = " and ".join(f".{part}.j2" for part in _FILES_OF if part in mine)
        lacks = " or ".join(f".{part}.j2" for part in _FILES_OF if part not in mine)
        if mine & {"txt", "html"} == {"txt"}:
            body = "plain text only, from your .txt.j2 (no HTML part: the shipped .html.j2 is not used)"
        elif mine & {"txt", "html"} == {"html"}:
            body = "your .html.j2 and a plain-text part made from it (the shipped .txt.j2 is not used)"
        elif mine & {"txt", "html"} == {"txt", "html"}:
            body = "your text and HTML"
        else:
            body = "the shipped text and HTML"
        subject = "your subject" if "subject" in mine else "the shipped subject"
        lines.append(f"{name}: overridden in part (templates_dir has {has}, not {lacks}): sent as {body}, "
                     f"with {subject}")
    # A shared part is included by both bodies of the agent mails that use it: one overridden alone
    # makes those mails' text and HTML show different things.
    kinds = {".txt": "text", ".html": "HTML"}
    for part in sorted(p for p in (override_dir / "_parts").glob("*") if p.suffix in kinds):
        other = part.with_suffix(".html" if part.suffix == ".txt" else ".txt")
        if not other.is_file():
            lines.append(f"_parts/{part.name}: overridden without _parts/{other.name}: mail that includes both "
                         f"shows yours in its {kinds[part.suffix]} part and the shipped one in its "
                         f"{kinds[other.suffix]} part; override both")
    return lines


def unused_overrides(override_dir: Path | None) -> list[str]:
    """One line per file in templates_dir that overrides nothing: a misspelt name is silently never used."""
    if override_dir is None or not override_dir.is_dir():
        return []
    shipped = sorted(p.relative_to(DEFAULT_TEMPLATES).as_posix() for p in DEFAULT_TEMPLATES.rglob("*") if p.is_file())
    lines = []
    for path in sorted(p for p in override_dir.rglob("*") if p.is_file()):
        name = path.relative_to(override_dir).as_posix()
        if name.startswith(f"{CANNED}/") and "/." not in name:
            lines += _unusable_saved_reply(name)
            continue
        if name in shipped or name.startswith(".") or "/." in name:
            continue
        close = difflib.get_close_matches(name, shipped, n=1)
        lines.append(f"{name}: overrides no shipped template, so no mail uses it"
                     + (f"; did you mean {close[0]}?" if close else ""))
    return lines


def _unusable_saved_reply(name: str) -> list[str]:
    """The line for a file under canned/ that `#canned` never finds (`canned/Refund.txt`); none for a saved reply.

    Saved replies are new names, so no shipped one is near; but only a
    `canned/<name>.txt` of lower-case letters, digits, `-` and `_` is offered,
    and any other file there is passed over without a word to the agents.
    """
    path = Path(name).relative_to(CANNED)
    if len(path.parts) == 1 and path.suffix == ".txt" and CANNED_NAME.fullmatch(path.stem):
        return []
    likely = "-".join(path.name.removesuffix(path.suffix).lower().split())
    return [f"{name}: not a saved reply, so `#canned` never offers it (saved replies are {CANNED}/<name>.txt, the "
            "name of lower-case letters, digits, - and _)"
            + (f"; did you mean {CANNED}/{likely}.txt?" if CANNED_NAME.fullmatch(likely) else "")]


def check_templates(override_dir: Path | None) -> tuple[list[str], int, int]:
    """Render every template and saved reply (overrides first); (errors, templates, saved replies)."""
    if override_dir is not None and not override_dir.is_dir():
        # Every override would be missed without a word: the shipped templates alone would go out.
        return [f"templates_dir {override_dir} is not a directory: point templates_dir at your overrides, or "
                "leave it out to send the shipped templates"], 0, 0
    renderer = Renderer(override_dir)
    errors = []
    names = shipped_templates()
    for name in names:
        sample = {**_BASE, **SAMPLES.get(name, {})}
        optional = OPTIONAL.get(name, ())
        try:
            renderer.render(name, sample)
            if optional:
                renderer.render(name, {key: value for key, value in sample.items() if key not in optional})
        except TemplateError as exc:
            hint = ""
            if any(f"'{key}' is undefined" in str(exc) for key in optional):
                hint = (f" (optional: {', '.join(optional)} may be absent when a mail is sent; test them with "
                        "`{% if name is defined and name %}`)")
            errors.append(f"{exc}{hint}")
    canned = renderer.canned_names()
    for name in canned:
        try:
            renderer.canned(name, CANNED_SAMPLE)
        except TemplateError as exc:
            errors.append(str(exc))
    return errors, len(names), len(canned)
