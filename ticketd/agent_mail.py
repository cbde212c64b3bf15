"""An agent's mail on a ticket: who counts as the agent, its commands applied all or none, the reply relayed.

Decisions worth knowing (issue 4):
- An agent mail whose commands cannot all be applied changes nothing: it is
  kept as an internal message (nothing is lost, nothing reaches the
  customer) and the agent gets agent/command_rejected with every error.
- A public reply carrying a line of an internal note is held back the same
  way as a bad command, so a note never reaches a customer by copy-paste.
- A mail of commands only, every one of which would change nothing (`#close`
  on a closed ticket), is kept internal and answered with
  agent/command_unchanged saying why for each: silence would look like a lost
  mail. Any other mail notes such commands in its history event only.
- Files are what the agent sends as much as words are: a reply with files and
  nothing typed (or only the quoted mail) goes to the customer with them, and
  with a status command they go in the status mail (the form that
  `waiting_customer` asks to fill in). A reply with nothing to send at all is
  refused, never kept back in silence.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ingest.match import desk_address, read_reply_addresses
from ingest.quotes import is_closing
from outbound.outbox import renderer_for
from ticketd.app import App
from ticketd.assignment import assign_in_tx, conversation_of, release_if_departed, why_nobody
from ticketd.clock import iso
from ticketd.customer_mail import add_followers
from ticketd.domain.absence import assign_refusals
from ticketd.domain.authority import Verdict, agent_authority
from ticketd.domain.commands import (
    IMPLIED_NOTE,
    USAGE,
    AgentReply,
    Command,
    Plan,
    Unchanged,
    assign_refusal,
    plan_commands,
    read_agent_reply,
    unchanged_commands,
    without_unseen_quotes,
)
from ticketd.domain.conversation import HISTORY_MESSAGES
from ticketd.domain.notices import AUTO_GENERATED, AUTO_REPLIED, Notice
from ticketd.domain.private_addresses import is_private_file, withhold_addresses
from ticketd.domain.statuses import Status
from ticketd.domain.tags import format_tag
from ticketd.mail_proof import agent_proof
from ticketd.merge import customer_words_joined
from ticketd.store import tickets as store
from ticketd.store.absences import absent_agents
from ticketd.store.assignment import open_counts
from ticketd.store.merge import MergeRefused, merge_tickets
from ticketd.store.outbox import ticket_thread
from ticketd.store.read_models import event_rows
from ticketd.ticket_changes import (
    Decision,
    customers_of,
    is_ours,
    mail_ref,
    set_status,
    store_message,
)
from ticketd.timers import answer_respond_clock, restart_wait

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail


def agent_verdict(app: App, mail: IncomingMail, ticket_id: int) -> Verdict:
    """PRODUCT.md: the agent's own signed reply address for this ticket, and From is that agent."""
    p = mail.parsed
    reply = mail.reply_address
    fingerprint = reply.agent_fingerprint if reply is not None and reply.ticket_id == ticket_id else None
    return agent_authority(from_addr=p.from_addr, from_count=p.from_count, reply_fingerprint=fingerprint,
                           agent_emails=[a.email for a in app.rules.agents], proof=agent_proof(app.settings, p))


def _files_to_send(mail: IncomingMail) -> list[dict]:
    """The files an agent's mail carries as content: not a signature's inline image (a logo is no
    reply), nor a contact card, the mail's own signature or its winmail.dat, which never reach a
    customer (outbound.outbox)."""
    return [a for a in mail.attachments
            if not a.get("inline") and not is_private_file(a["filename"], a["content_type"])]


def _as_note_if_asked(mail: IncomingMail, ticket_id: int, reply: AgentReply, with_files: bool) -> AgentReply:
    """A reply with words or files through the reply address of an internal note's mail: as if under `#note`.

    Answering a colleague's note from the mail that carried it is talking to
    colleagues: relayed to the customer, it went out with the note quoted
    below it. Commands alone (`#close`) still apply as written.
    """
    if (not _through_note(mail, ticket_id) or not (reply.body or with_files)
            or any(c.name == "note" for c in reply.commands)):
        return reply
    return replace(reply, commands=(Command("note", "", IMPLIED_NOTE), *reply.commands))


def _html_only(mail: IncomingMail) -> bool:
    # Without a text/plain part the text was made from HTML, where hidden
    # elements look like visible lines: commands are read from plain text only.
    # Asked of the parse, not of the text: most clients make their plain part
    # from the HTML, and a plain "#close" equal to the HTML's text was refused.
    return mail.parsed.text_from_html


def _withheld(app: App, text: str | None) -> str | None:
    """Text for customers: agents' own addresses in it, and our signed ones, read as the support address.

    An agent's signed reply address in their words (pasted, or in a signature) would hand the customer
    the agent's authority but for From, which anyone writes (PRODUCT.md, "Agents by email").
    """
    if not text:
        return text
    support = app.settings.support_address
    return withhold_addresses(text, [*(a.email for a in app.rules.agents), *_signed_addresses(app, text)], support)


def _signed_addresses(app: App, text: str) -> list[str]:
    """The addresses in `text` that carry a token we signed (`support+<token>@domain`, ingest.match)."""
    local, _, domain = app.settings.support_address.partition("@")
    if f"{local}+".lower() not in text.lower():
        return []
    spelled = re.findall(rf"(?<![\w.+\-]){re.escape(local)}\+[\w.\-]+@{re.escape(domain)}", text, re.IGNORECASE)
    return [a for a in dict.fromkeys(spelled)
            if read_reply_addresses(app.signer, app.settings.support_address, [a])]


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


# At most this many closing lines a note and the reply share are the agent's own signature, which their
# mail client adds to both (Outlook and Gmail write none with "-- ", so it stays in the note's text).
SIGNATURE_LINES = 8
SIGNATURE_LINE_CHARS = 80
_POSTSCRIPT = re.compile(r"\s*(?:p\.?\s?s|nb|n\.b|fyi|note)\b", re.IGNORECASE)


def _own_lines(lines: list[str]) -> list[str]:
    return [squashed for line in lines if (squashed := _squash(line))]


def _shared_signature(written: list[str], note: list[str], reply: list[str]) -> int:
    """How many closing lines of the note are a signature the reply ends with too: from a sign-off down
    ("Kind regards," over a name, title, phone), when the note says more above it."""
    shared = 0
    while (shared < min(len(note) - 1, len(reply), SIGNATURE_LINES) and note[-1 - shared] == reply[-1 - shared]
           and _signature_like(written[-1 - shared])):
        shared += 1
    return next((k for k in range(shared, 0, -1) if is_closing(written[-k])), 0)


def _signature_like(line: str) -> bool:
    """A line a signature holds (a name, title, phone, address), not a postscript saying something."""
    return len(line) <= SIGNATURE_LINE_CHARS and not _POSTSCRIPT.match(line)


def _quoted_note(conn, app: App, ticket_id: int, body: str) -> str | None:
    """A line of an internal note a public reply carries (unquoted copy-paste, or a client that quotes
    without '>'), which holds the reply back; None when it carries none.

    Not counted: what the customer has read already (the note quoted their words, the reply quotes them
    again), and the signature the note and the reply both end with, from its sign-off down. A reply that
    pastes a whole note still carries the words above its signature.
    """
    squashed = _squash(body)
    reply_lines = _own_lines(body.splitlines())
    seen = _squash("\n".join(store.public_texts(conn, ticket_id, besides=[a.email for a in app.rules.agents])))
    for note in store.note_texts(conn, ticket_id):
        written = [line.strip() for line in note.splitlines() if line.strip()]
        note_lines = _own_lines(written)
        ending = _shared_signature(written, note_lines, reply_lines)
        for shown, line in zip(written[:len(written) - ending], note_lines[:len(note_lines) - ending]):
            if len(line) >= 20 and line in squashed and line not in seen:
                return shown
    return None


def _through_note(mail: IncomingMail, ticket_id: int) -> bool:
    """Whether the mail came through the reply address of this ticket's internal note mail."""
    address = mail.reply_address
    return address is not None and address.note and address.ticket_id == ticket_id


def _reject(conn, app: App, mail: IncomingMail, ticket: dict, agent, plan: Plan, now) -> Decision:
    """Nothing changes; the mail is kept as an internal message and the agent told what to fix.

    The refusal of a mail that came through a note's mail answers as a note
    too: the agent told to send their words again through it, a typo mended,
    must not find them relayed to the customer. Unless what was refused is
    asking the customer from there: the answer to that refusal is for them.
    """
    row_id = store_message(conn, app, mail, ticket["id"], now, author_role="agent", internal=True)
    store.add_event(conn, ticket["id"], now, agent.email, "commands_rejected", message_row_id=row_id,
                    reason="; ".join(plan.errors) + f"; {mail_ref(mail)}")
    errors = list(plan.errors) + [f"Write it as: {u}" for u in plan.usage]
    as_note = _through_note(mail, ticket["id"]) and not plan.asked_customer_from_note
    return Decision(ticket["id"], notices=[Notice(
        template="agent/command_rejected", recipient=agent.email, ticket_id=ticket["id"],
        auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=mail.parsed.message_id,
        reply_as_note=as_note, context={"errors": errors, "text": mail.text, "agent_name": agent.name,
                                        "as_note": as_note},
    )])


def _status_event(conn, ticket: dict) -> dict | None:
    """The latest history event that moved the ticket into its current status, if any."""
    statuses = {s.value for s in Status}
    for event in reversed(event_rows(conn, ticket["id"])):
        if event["to_value"] == ticket["status"] and event["from_value"] in statuses:
            return dict(event)
    return None


def _unchanged(conn, ticket: dict, reply, plan: Plan, people: dict[str, str]) -> Unchanged:
    """Which of the mail's commands would change nothing on the ticket as it is now."""
    same_status = plan.status is not None and plan.status.value == ticket["status"]
    return unchanged_commands(reply, plan, ticket, status_event=_status_event(conn, ticket) if same_status else None,
                              people=people)


def _answer_unchanged(conn, app: App, mail: IncomingMail, ticket: dict, agent, reply, unchanged: Unchanged,
                      now) -> Decision:
    """Every command would change nothing: the ticket stays as it is, the mail is kept, the agent told why.

    PRODUCT.md: a command that cannot be applied gets the agent a reply. A
    commands-only mail that changes nothing would otherwise leave no trace
    the agent can see, as if it never arrived. The stored message is
    internal like any commands-only mail, so it answers no respond-within
    clock, and no timer is touched.
    """
    row_id = store_message(conn, app, mail, ticket["id"], now, author_role="agent", internal=True, text=reply.body)
    store.add_event(conn, ticket["id"], now, agent.email, "commands_unchanged", message_row_id=row_id,
                    reason="; ".join(unchanged.reasons) + f"; {mail_ref(mail)}")
    as_note = _through_note(mail, ticket["id"])   # as in _reject
    return Decision(ticket["id"], notices=[Notice(
        template="agent/command_unchanged", recipient=agent.email, ticket_id=ticket["id"],
        auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=mail.parsed.message_id,
        reply_as_note=as_note, context={"reasons": list(unchanged.reasons), "text": mail.text,
                                        "agent_name": agent.name, "as_note": as_note},
    )])


def apply_agent_mail(conn, app: App, mail: IncomingMail, ticket: dict, verdict: Verdict, now) -> Decision:
    """An agent's reply: check its commands, apply them all or none, relay the public text."""
    ticket_id = ticket["id"]
    agent = app.rules.agent(verdict.agent)
    actor = agent.email
    ref = mail_ref(mail)
    store.add_participant(conn, ticket_id, actor, "agent", agent.name, now)
    if mail.robot_reason is not None:
        # An agent's out-of-office answering our notification: kept, never relayed.
        row_id = store_message(conn, app, mail, ticket_id, now, author_role="agent", internal=True)
        store.add_event(conn, ticket_id, now, actor, "not_relayed", message_row_id=row_id,
                        reason=f"automatic mail ({mail.robot_reason}); {ref}")
        return Decision(ticket_id)

    files = bool(_files_to_send(mail))
    if mail.quoted_only and not files:
        # Send pressed on a reply with nothing written: relaying it would give
        # the customer an attribution line ("On Monday, ... wrote:") and count
        # as the first response.
        return _reject(conn, app, mail, ticket, agent, Plan(errors=(
            "the reply has no text of its own (only the quoted mail), so nothing was sent to the customer. "
            "Write the answer above the quoted text and send it again.",)), now)
    # Only the quoted mail under the files: they are the reply, and neither the quote nor the
    # attribution line over it ("On Monday, ... wrote:") is the agent's to relay.
    text = "" if mail.quoted_only else mail.text
    written = reply = _as_note_if_asked(mail, ticket_id, read_agent_reply(text), files)
    if ">" in reply.body:   # an inline reply's questions: only those the customer has seen go
        reply = replace(reply, body=without_unseen_quotes(reply.body, store.public_texts(conn, ticket_id)))
    if not (reply.body or reply.commands or reply.unreadable or files):
        # Nothing typed and nothing attached but a contact card, the mail's signature or a signature's
        # image (or only quotes of mail the customer never saw): kept in silence, it would look sent.
        aside = (" (a contact card, a signed mail's signature or a signature's image is not sent on its own)"
                 if mail.attachments else "")
        return _reject(conn, app, mail, ticket, agent, Plan(errors=(
            f"the reply has no text of its own{aside}, so nothing was sent to the customer. "
            "Write the answer, or attach the file, and send it again.",)), now)
    people = _people(conn, reply, ticket_id)
    if reply.commands and _html_only(mail):
        plan = Plan(errors=("commands were found in a mail without a plain-text part; hidden HTML can "
                            "look like commands there, so none were applied. Send the reply with a "
                            "plain-text part (or as plain text).",))
    else:
        plan = plan_commands(reply, now=now, agents=[a.email for a in app.rules.agents],
                             groups=list(app.rules.groups), zone=app.rules.zone_of(actor),
                             away=_assign_refusals(conn, app, reply, actor, now, ticket["assignee"]),
                             names={a.email: a.name for a in app.rules.agents},
                             followers=[email for email, role in people.items() if role == "follower"],
                             ours=lambda address: is_ours(app, address),
                             desk=desk_address(app.signer, app.settings.support_address, actor),
                             with_files=files)
    if plan.ok and (closed := assign_refusal(reply, plan, ticket)) is not None:
        plan = Plan(errors=(closed + ".",))
    if plan.ok and plan.canned:
        reply, plan = _with_saved_reply(app, ticket, agent, reply, plan)
    # Files go where words go: the customer's, unless the mail is a note.
    public = bool(reply.body or files) and not plan.internal
    # The questions dropped above count too: an answer under a quoted note was meant for colleagues.
    if plan.ok and public and (noted := _quoted_note(conn, app, ticket_id, f"{written.body}\n{reply.body}")):
        shown = noted if len(noted) <= 100 else noted[:99] + "…"
        plan = Plan(errors=(f"the reply contains text of an internal note ({shown!r}), so it was not sent to the "
                            "customer. Reply again without the note's text.",))
    if plan.ok and public and not plan.follow and not customers_of(conn, app, ticket_id):
        # A ticket whose first mail named no address (ticketd.domain.requester): a reply stored as
        # sent that reached no one would be a silent loss; the agent hears it at once instead.
        plan = Plan(errors=("no address to answer: the mail that opened this ticket named none, and nobody "
                            "follows it, so your reply was not sent. Name whom it is for with #follow "
                            "<address> above your text, keep what you wrote on the ticket with #note, or "
                            "close it with #close alone.",), usage=(USAGE["follow"],))
    if not plan.ok:
        return _reject(conn, app, mail, ticket, agent, plan, now)
    unchanged = _unchanged(conn, ticket, reply, plan, people)
    if unchanged.whole_mail and not files:
        return _answer_unchanged(conn, app, mail, ticket, agent, reply, unchanged, now)

    savepoint = conn.begin_nested()
    try:
        decision = _apply_plan(conn, app, mail, ticket, agent, reply, plan, public, verdict, now,
                               unchanged.reasons)
    except ValueError as exc:  # e.g. #assign to a target that vanished from the rules
        savepoint.rollback()
        ticket = store.lock_ticket(conn, ticket_id)
        line = next((c.line for c in reply.commands if c.name == "assign"), "#assign")
        return _reject(conn, app, mail, ticket, agent, Plan(errors=(f"{line}: {exc}",)), now)
    except MergeRefused as exc:  # into itself, a ticket that is not there or was merged itself
        savepoint.rollback()
        ticket = store.lock_ticket(conn, ticket_id)
        line = next(c.line for c in reply.commands if c.name == "merge")
        return _reject(conn, app, mail, ticket, agent, Plan(errors=(f"{line}: {exc}.",), usage=(USAGE["merge"],)),
                       now)
    savepoint.commit()
    return decision


def _merged(conn, app: App, source_id: int, into_id: int, agent, row_id: int, now, *, by: str) -> list[Notice]:
    """Merge this ticket into the one `#merge` named (MergeRefused if it may not be); its assignee told,
    unless it is the agent who merged or the ticket was closed (a late mail joining a solved case)."""
    source = store.get_ticket(conn, source_id)
    merged = merge_tickets(conn, source_id, into_id, now, actor=agent.email, by=by)
    customer_words_joined(conn, app, merged, now, actor=agent.email, by=by)
    into = store.get_ticket(conn, merged.into)
    owner = into["assignee"]
    if owner in (None, agent.email) or into["status"] == Status.CLOSED.value or app.rules.agent(owner) is None:
        return []
    return [Notice(
        template="agent/colleague_worked", recipient=owner, ticket_id=merged.into,
        auto_submitted=AUTO_GENERATED, agent_reply_to=owner, from_name=agent.name,
        context={"agent_name": agent.name, "text": "",
                 # Whose ticket joined, and about what: the counts alone told its owner nothing to act on.
                 "changes": [f"merged {format_tag(source_id)} \"{source['subject']}\" from "
                             f"{source['requester'] or 'someone who gave no address'} into it: {merged.summary()}"],
                 "handed_to": None, "taken": False},
        message_row_id=row_id,
    )]


def _waits_in_group(conn, app: App, mail: IncomingMail, ticket: dict, agent, reply, group: str, now) -> Notice:
    """`#assign <group>` left the ticket with nobody: the agent who wrote is told it waits, and why.

    Silence read as "a colleague has it" while it waited unseen; the group
    change stands (docs/rules.md: a ticket waits in its group until someone
    is available), so this is no refusal.
    """
    line = next(c.line for c in reply.commands if c.name == "assign")
    as_note = _through_note(mail, ticket["id"])   # as in _answer_unchanged
    return Notice(
        template="agent/assign_waiting", recipient=agent.email, ticket_id=ticket["id"],
        auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=mail.parsed.message_id,
        reply_as_note=as_note, context={"line": line, "group": group, "why": why_nobody(conn, app.rules, group, now),
                                        "text": mail.text, "agent_name": agent.name, "as_note": as_note},
    )


def _assign_refusals(conn, app: App, reply, actor: str, now, holder: str | None) -> dict[str, str]:
    """The agents `#assign` may not name now (away by rules.yaml or their own word, or at their max_open),
    each with what to write instead; `holder` the ticket's agent.

    Read only for a mail that has an `#assign`: a ticket given to someone away
    would wait unseen, where the agent asking meant it to be worked on; one
    at max_open takes no new tickets, as round robin and routes hold them to.
    """
    if not any(c.name == "assign" for c in reply.commands):
        return {}
    absent = absent_agents(conn, now)
    if not absent and not any(a.away or a.max_open is not None for a in app.rules.agents):
        return {}
    counts = open_counts(conn, [a.email for a in app.rules.agents])
    refusals = assign_refusals(app.rules, absent, counts, writer=actor, zone=app.rules.zone_of(actor))
    held_by = app.rules.agent(holder) if holder else None
    if held_by is not None and not held_by.away and held_by.email not in absent:
        # Their max_open counts this ticket already: naming them gives them nothing new (and changes nothing).
        refusals.pop(held_by.email, None)
    return refusals


def _people(conn, reply, ticket_id: int) -> dict[str, str]:
    """The ticket's participants' roles by address, read only for a mail that has a `#follow` or `#unfollow`."""
    if not any(c.name in ("follow", "unfollow") for c in reply.commands):
        return {}
    return {p["email"]: p["role"] for p in store.participants_of(conn, ticket_id)}


def _with_saved_reply(app: App, ticket: dict, agent, reply, plan: Plan):
    """`#canned <name>`: the saved reply's text first, the agent's own below it; or a plan that says what is missing."""
    renderer = renderer_for(app)
    text = renderer.canned(plan.canned, {"ticket": ticket, "tag": format_tag(ticket["id"]), "agent_name": agent.name,
                                         "support_address": app.settings.support_address})
    if text is None:
        line = next(c.line for c in reply.commands if c.name == "canned")
        names = ", ".join(renderer.canned_names()) or "none (put <name>.txt files under canned/ in templates_dir)"
        return reply, Plan(errors=(f"{line}: there is no saved reply {plan.canned!r}; saved replies: {names}.",),
                           usage=(USAGE["canned"],))
    return replace(reply, body="\n\n".join(t for t in (text, reply.body) if t)), plan


def _apply_plan(conn, app: App, mail: IncomingMail, ticket: dict, agent, reply, plan: Plan, public: bool,
                verdict: Verdict, now, unchanged: tuple[str, ...] = ()) -> Decision:
    """Apply a checked plan: the stored message, its event, the field and status changes, the notices.

    Commands that change nothing (`unchanged`) are named in the event only:
    a mail that also changes something, relays a reply or stores a note has
    a visible effect already, and a notice per redundant command would be noise.
    """
    ticket_id = ticket["id"]
    actor = agent.email
    ref = mail_ref(mail)
    decision = Decision(ticket_id)
    # Read before this mail is stored: the agent asked for what came before it.
    history = conversation_of(conn, ticket_id, HISTORY_MESSAGES, rules=app.rules) if plan.history else None
    if plan.internal:
        note_args = next((c.args for c in reply.commands if c.name == "note"), "")
        stored_text = "\n".join(t for t in (note_args, reply.body) if t)
    else:
        # A commands-only mail keeps its commands in full_text and events.
        stored_text = reply.body
    row_id = store_message(conn, app, mail, ticket_id, now, author_role="agent", internal=not public,
                           text=stored_text)
    kind = "agent_replied" if public else ("internal_note" if plan.internal else "agent_commands")
    commands = "; ".join(c.line for c in reply.commands)
    store.add_event(conn, ticket_id, now, actor, kind, message_row_id=row_id,
                    reason=f"{ref} via {verdict.reason}" + (f"; commands: {commands}" if commands else "")
                    + (f"; changed nothing: {'; '.join(unchanged)}" if unchanged else ""))

    if public and ticket["first_response_at"] is None:
        store.update_ticket(conn, ticket_id, now, first_response_at=now)
        ticket["first_response_at"] = now
    if ticket["status"] == Status.NEW.value and public and plan.status is None:
        set_status(conn, app, ticket, Status.OPEN, now, actor=actor, kind="status",
                   reason=f"first agent reply; {ref}", row_id=row_id)

    for name in ("priority", "type"):
        value = getattr(plan, name)
        if value is not None and value != ticket[name]:
            store.update_ticket(conn, ticket_id, now, **{name: value})
            store.add_event(conn, ticket_id, now, actor, name, from_value=ticket[name], to_value=value,
                            reason=f"#{name} {value}; {ref}", message_row_id=row_id)
            ticket[name] = value
    # Before the reply's recipients are read: someone taken off gets not even this one, someone
    # added gets it (the agent's words to them: "I have added your colleague").
    for address in plan.unfollow:
        store.remove_follower(conn, ticket_id, address)
        store.add_event(conn, ticket_id, now, actor, "follower_removed", from_value=address,
                        reason=f"#unfollow by {actor}; {ref}", message_row_id=row_id)
    add_followers(conn, ticket_id, [(address, None) for address in plan.follow], now, actor=actor,
                  reason=f"#follow by {actor}; {ref}", row_id=row_id)

    status_changed = False
    if plan.status is not None:
        fields = {}
        if plan.status == Status.POSTPONED:
            fields["postponed_until"] = plan.postponed_until
        elif plan.status == Status.IN_DEVELOPMENT:
            fields.update(dev_engineer=plan.dev_engineer, dev_tracker_key=plan.dev_tracker_key,
                          dev_due=plan.dev_due)
        if plan.status == Status.CLOSED:
            kind, why = "closed_by_agent", f"closed by agent {actor}" + (
                f" ({plan.close_reason})" if plan.close_reason else "")
        else:
            kind, why = "status", f"{plan.status_command} by {actor}"
            # The time the command's words came to, as it was then (`3d` from when?).
            if plan.status == Status.POSTPONED:
                why += f" (until {iso(plan.postponed_until)})"
            elif plan.status == Status.IN_DEVELOPMENT:
                why += f" (due {iso(plan.dev_due)})"
        status_changed = set_status(conn, app, ticket, plan.status, now, actor=actor, kind=kind,
                                    reason=f"{why}; {ref}", row_id=row_id, **fields)

    if public and not status_changed:
        # An agent who writes to a waiting customer again asks anew: the silence counts from this reply.
        restart_wait(conn, app, ticket_id, ticket["status"], now)

    assignee_before = ticket["assignee"]
    if plan.assign_to is not None:
        decision.notices += assign_in_tx(conn, app, ticket_id, plan.assign_to, now, actor, row_id=row_id)
        ticket.update(store.get_ticket(conn, ticket_id))
        if ticket["assignee"] is None:
            decision.notices.append(_waits_in_group(conn, app, mail, ticket, agent, reply, plan.assign_to, now))
    if ticket["status"] != Status.CLOSED.value and release_if_departed(conn, app, ticket, now):
        # A colleague's `#status open` on a closed ticket of an agent since removed from rules.yaml:
        # it goes to the group's next agent, as a customer's reopening does (docs/rules.md).
        decision.jobs.append(("assign_ticket", (ticket_id,)))
    if public:   # after any status change above: the clock it armed is answered too
        answer_respond_clock(conn, ticket_id, now)
    # A commands-only mail touches the ticket; asking for its history alone does not.
    only_history = plan.history and not reply.body and all(c.name == "history" for c in reply.commands)
    if not public and not plan.internal and plan.status is None and plan.assign_to is None and not only_history:
        store.update_ticket(conn, ticket_id, now)

    customers = customers_of(conn, app, ticket_id)
    if public:
        # PRODUCT.md: a customer's Cc joins as followers; an agent's too. They are not sent this reply:
        # the agent's own mail server delivered it to them already.
        copied = [(cc, mail.parsed.recipient_names.get(cc)) for cc in mail.parsed.cc
                  if not is_ours(app, cc) and app.rules.agent(cc) is None]
        add_followers(conn, ticket_id, copied, now, actor=actor, row_id=row_id,
                      reason=f"in Cc of {actor}'s reply; {ref}", limit=app.settings.max_followers)
    files = (row_id,) if mail.attachments else ()   # the agent's own files go where their words go
    # PRODUCT.md: with #note the whole reply is internal, "never to customers",
    # and a command's argument is part of the reply. Customers may still hear
    # that the status changed, never the close reason or a date the agent gave
    # (a "ticket" in a notice's context stands in for the one templates show).
    withheld: dict = {}
    if plan.internal:
        withheld["ticket"] = {**store.get_ticket(conn, ticket_id), "postponed_until": None, "dev_due": None}
    # Files without words go in the mail the status command sends the customer, the form with the
    # "we need something from you" that asks for it; alone, or with words, they go in a reply.
    status_mail = status_changed and plan.status != Status.CLOSED and not (public and (reply.body or plan.propose))
    if public and not status_mail:
        template = "requester/solution_proposed" if plan.propose else "requester/agent_reply"
        # In reply to the customers' latest mail, which they have: the
        # agent's own mail never reached them and its id names the agent's host.
        latest = (ticket_thread(conn, ticket_id).references or [None])[-1]
        relayed = _withheld(app, reply.body)
        for email in customers:
            decision.notices.append(Notice(
                template=template, recipient=email, ticket_id=ticket_id, auto_submitted=None,
                # Only the requester accepts or rejects (README): a follower is not asked to.
                from_name=agent.name, context={"text": relayed, "agent_name": agent.name,
                                               "decides": email == (ticket["requester"] or "").lower()},
                message_row_id=row_id, in_reply_to=latest, attach_from=files,
            ))
    elif status_mail:
        # A status set without words (or under #note) still reaches the
        # customer: waiting_customer's reminder and auto-close must follow a
        # question they were told of. Closing has its own mail, below.
        for email in customers:
            decision.notices.append(Notice(
                template="requester/status_changed", recipient=email, ticket_id=ticket_id,
                context={"status": plan.status.value, "reason": None, **withheld,
                         "decides": email == (ticket["requester"] or "").lower()}, from_name=agent.name,
                by_person=True, message_row_id=row_id if public else None, attach_from=files if public else (),
            ))
    if status_changed and plan.status == Status.CLOSED and ticket["requester"] in customers:
        decision.notices.append(Notice(
            template="requester/ticket_closed", recipient=ticket["requester"], ticket_id=ticket_id,
            context={"reason": (None if plan.internal else _withheld(app, plan.close_reason))
                     or f"closed by {agent.name}",
                     "closed_by": "agent"}, by_person=True,
        ))
    handed_to = ticket["assignee"] if ticket["assignee"] != assignee_before else None
    # The agent whose ticket a colleague changed hears of it in one mail, the note's words in it too.
    owner_told = assignee_before not in (None, actor) and bool(app.rules.agent(assignee_before)) and (
        public or plan.status is not None or plan.priority or plan.type or handed_to or plan.merge_into)
    if plan.internal:
        others = {pp["email"] for pp in store.participants_of(conn, ticket_id) if pp["role"] == "agent"}
        if ticket["assignee"]:
            others.add(ticket["assignee"])
        # Whom the note hands the ticket to reads it in the assignment mail's conversation; a second mail,
        # the note's own, sat on top of it, and their answer to that one became a note the customer never saw.
        others -= {actor, handed_to}
        if owner_told and plan.merge_into is None:   # the merge's mail to them does not carry the note
            others.discard(assignee_before)
        for email in sorted(others):
            if app.rules.agent(email) is None:
                continue
            decision.notices.append(Notice(
                template="agent/internal_note", recipient=email, ticket_id=ticket_id,
                auto_submitted=AUTO_GENERATED, agent_reply_to=email, reply_as_note=True, from_name=agent.name,
                context={"text": stored_text, "agent_name": agent.name}, message_row_id=row_id,
                attach_from=files,
            ))
    colleague_told = None
    if owner_told:
        # A colleague answering from an old notice, setting a status, or
        # taking the ticket away: the agent it belonged to would otherwise
        # learn of it from the customer (a "closed" ticket they still
        # answer), or not at all. A note alone goes to them above; a note with
        # a change goes in this mail, which then answers as the note's would.
        changes = [c.line for c in reply.commands if c.name not in ("note", "history", "canned")]
        new_owner = app.rules.agent(handed_to) if handed_to else None
        colleague_told = Notice(
            template="agent/colleague_worked", recipient=assignee_before, ticket_id=ticket_id,
            auto_submitted=AUTO_GENERATED, agent_reply_to=assignee_before, from_name=agent.name,
            reply_as_note=plan.internal and plan.merge_into is None,
            attach_from=files if plan.internal and plan.merge_into is None else (),
            context={"agent_name": agent.name, "text": reply.body if public else "",
                     "changes": changes or ["replied to the customer"],
                     "handed_to": new_owner.name if new_owner else handed_to,
                     "taken": handed_to == actor,
                     **({"note": stored_text} if plan.internal and plan.merge_into is None else {})},
            message_row_id=row_id,
        )
    merge_told: list[Notice] = []
    if plan.merge_into is not None:
        # Last: the reply above went to this ticket's customers (they follow the other one from now on),
        # and the merge moves the message that carried it along with the rest.
        merge_told = _merged(conn, app, ticket_id, plan.merge_into, agent, row_id, now,
                             by=f"#merge by {actor}; {ref}")
    if colleague_told is not None and colleague_told.recipient not in {n.recipient for n in merge_told}:
        # The owner of both tickets reads of the merge on the one that stays, once: a second mail about the
        # closed one said it "stays yours".
        decision.notices.append(colleague_told)
    decision.notices += merge_told
    if history is not None:
        decision.notices.append(Notice(
            template="agent/ticket_history", recipient=actor, ticket_id=ticket_id, auto_submitted=AUTO_REPLIED,
            agent_reply_to=actor, in_reply_to=mail.parsed.message_id, attach_from=history.attach_from,
            context={"agent_name": agent.name, "conversation": history.messages,
                     "conversation_omitted": history.omitted},
        ))
    return decision

