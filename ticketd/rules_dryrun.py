"""`ticketd rules test`: what a rule set would do with one real mail, without writing anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ingest.html_clean import clean_html
from ingest.match import read_reply_addresses
from ingest.parse import MailTooComplex, ParsedMail, dedupe_key, parse_mail
from ticketd.agent_desk import desk_agent
from ticketd.app import App
from ticketd.clock import iso
from ticketd.copies import kept_copy
from ticketd.domain import timers as plan_of
from ticketd.domain.assignment import next_agent
from ticketd.domain.lifecycle import KeyFacts, parse_key_facts
from ticketd.domain.loops import auto_generated_reason, is_our_address, own_address_reason
from ticketd.domain.requester import Requester, requester_of_mail, why_written_to, written_to
from ticketd.domain.rules import Agent, MailFacts, RouteDecision, RuleSet
from ticketd.domain.statuses import Status
from ticketd.pipeline import find_thread
from ticketd.prepare import as_written, attachment_rows, recipients
from ticketd.store import tickets as ticket_store
from ticketd.store.absences import absence_of, has_absences_table, rules_now
from ticketd.store.assignment import open_counts, read_cursor
from ticketd.store.db import reading

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketd.settings import Settings


@dataclass
class DryRun:
    decision: RouteDecision
    key_facts: KeyFacts = field(default_factory=lambda: KeyFacts({}))
    agent: str | None = None
    agent_how: str = ""
    timers: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    robot_reason: str | None = None
    requester: Requester | None = None
    requester_why: str | None = None   # the requester line when the mail came From one of our addresses
    # Where the daemon's database would thread it ("joins ticket [#N] (matched by references)"); None: a new ticket
    follow_up: str | None = None
    desk_of: str | None = None   # the agent whose desk address it came through: no ticket at all
    kept_as: str | None = None   # the message it already is ("message 7 of ticket [#3]"): another delivery of it
    # customer_auth: the tickets a participant's tag named, not joined for want of the MTA's proof, and why
    refused_tags: str | None = None

    def lines(self) -> list[str]:
        if self.kept_as is not None:
            return [f"kept already: this mail is {self.kept_as} (its Message-ID, sender, Date, text and files "
                    "alike): another delivery of it adds nothing, sends nothing and changes nothing"]
        if self.desk_of is not None:
            return [f"desk: goes to the desk of {self.desk_of} (the agent's own commands; no ticket, no route)"]
        if self.follow_up is not None:
            # Routes, the acknowledgement and assignment are for a new ticket;
            # what a follow-up does depends on who writes and the ticket's state.
            return [f"thread: {self.follow_up}; routes, assignment, timers and the acknowledgement apply "
                    "only to a new ticket. As a new ticket it would get:",
                    *(f"  {line}" for line in self._new_ticket_lines())]
        if self.refused_tags is not None:
            return [f"thread: {self.refused_tags}; a ticket of its own", *self._new_ticket_lines()]
        return self._new_ticket_lines()

    def _new_ticket_lines(self) -> list[str]:
        out = []
        if not self.decision.routes:
            out.append("route: none matched")
        for name, reasons in self.decision.reasons:
            out.append(f"route: {name!r} matched because " + "; ".join(reasons))
        d = self.decision
        if self.key_facts.values:
            out.append("key facts: " + "; ".join(f"{k}={v}" for k, v in self.key_facts.values.items()))
        # The ticket's type: the route's, else the key fact's (as open_ticket stores it).
        kind = d.type or self.key_facts.values.get("type")
        ack = "suppressed" if d.suppress_ack or d.close else "sent"
        if ack == "sent" and self.robot_reason:
            ack = "none (not answered, below)"
        elif ack == "sent" and self.requester is not None and not self.requester.address:
            ack = "none (no address to answer)"
        if self.requester_why is not None:
            out.append(f"requester: {self.requester_why}")
        elif self.requester is not None and self.requester.from_reply_to:
            out.append(f"requester: {self.requester.address} (Reply-To; the route says requester: reply_to)")
        elif self.requester is not None and (why := self.requester.why()) is not None:
            out.append(f"requester: {why}")
        out.append(f"group: {d.group or '-'}  priority: {d.priority or 'normal'}  type: {kind or '-'}  "
                   f"tags: {', '.join(d.tags) or '-'}  acknowledgement: {ack}")
        if d.close:
            out.append("status: closed at once by the route (no acknowledgement, no agent, no timers)")
        else:
            out.append(f"agent: {self.agent or 'nobody available, the ticket would wait unassigned'}"
                       + (f" ({self.agent_how})" if self.agent_how else ""))
            out.extend(f"timer: {t}" for t in self.timers or ["none for status new"])
        out.extend(f"mail: {m}" for m in self.mails or ["none"])
        if self.robot_reason:
            out.append(f"not answered: {self.robot_reason}")
        return out


def key_facts_of(parsed: ParsedMail) -> KeyFacts:
    """The key facts the daemon reads from this mail when it opens a ticket with it.

    PRODUCT.md "Key facts": `Type:` and the other lines at the top of the
    first mail fill the ticket's fields, and routes see its type. Same parser
    and same text as the daemon (ticketd.pipeline.apply gives a new ticket's
    mail `parsed.text.strip()`, ticketd.conversation.open_ticket parses it),
    so a `type:` condition matches here exactly when it matches there.
    """
    return parse_key_facts(parsed.text.strip())


def facts_of(parsed: ParsedMail, key_facts: KeyFacts | None = None) -> MailFacts:
    key_facts = key_facts_of(parsed) if key_facts is None else key_facts
    return MailFacts(from_addr=parsed.author or "", to=", ".join(parsed.to), cc=", ".join(parsed.cc),
                     subject=parsed.subject, body=parsed.text, headers=parsed.header_values,
                     type=key_facts.values.get("type", ""))


def _cursor_and_counts(engine: Engine, rules: RuleSet, group: str,
                       now: datetime) -> tuple[str | None, dict[str, int], tuple[Agent, ...]]:
    """The group's cursor, its members' open tickets, and its members as ticketd.assignment.pick sees them at
    `now`: those away by their own word (#away, `ticketd agents away`) marked away."""
    with reading(engine) as conn:   # read only: nothing is locked, nothing written
        members = (rules_now(conn, rules, now) if has_absences_table(conn) else rules).members(group)
        return read_cursor(conn, group), open_counts(conn, (a.email for a in members)), members


def _away(rules: RuleSet, email: str, now: datetime, engine: Engine | None) -> str | None:
    """How the agent is away at `now`, as `ticketd agents list` words it; None if they are not (or not known)."""
    if engine is not None:
        with reading(engine) as conn:
            own = absence_of(conn, email, now) if has_absences_table(conn) else None
        if own is not None:
            return f"away until {iso(own[1])}" if own[1] is not None else "away until #back"
    agent = rules.agent(email)
    return "away (rules.yaml)" if agent is not None and agent.away else None


def _unable(rules: RuleSet, email: str, now: datetime, engine: Engine | None) -> str | None:
    """Why the agent takes no new ticket now (away, at max_open), as _away words it; None if they can (or
    it is not known)."""
    if (away := _away(rules, email, now, engine)) is not None:
        return away
    agent = rules.agent(email)
    if agent is None or agent.max_open is None or engine is None:
        return None
    with reading(engine) as conn:
        held = open_counts(conn, (agent.email,)).get(agent.email, 0)
    return f"at max_open ({held} open tickets, max_open {agent.max_open})" if held >= agent.max_open else None


@dataclass(frozen=True)
class _MailFile:
    """A mail file as ticketd.copies compares it with the messages kept (ticketd.prepare does so for the daemon)."""
    raw: bytes
    parsed: ParsedMail
    html: str | None
    attachments: list[dict]


def thread_of(app: App, parsed: ParsedMail, result: DryRun, raw: bytes | None = None) -> None:
    """Where the daemon whose database `app` reads would put the mail: nowhere new (`raw` is a mail kept
    already), a desk, a ticket, or (none of them) a new one.

    The same lookups as ticketd.pipeline.apply, read only, with the mail's
    headers as its recipients (a file has no envelope).
    """
    with reading(app.engine) as conn:
        copies = ticket_store.kept_copies(conn, parsed.message_id, parsed.from_addr)
        if raw is not None and copies:
            read = _MailFile(raw, parsed, clean_html(parsed.html), attachment_rows(parsed))
            if (copy := kept_copy(conn, read, copies)) is not None:
                result.kept_as = f"message {copy.message_row_id} of ticket [#{copy.ticket_id}]"
                return
    addresses = read_reply_addresses(app.signer, app.settings.support_address, recipients(parsed, []))
    if (agent := desk_agent(app, parsed, addresses)) is not None:
        result.desk_of = agent.email
        return
    with reading(app.engine) as conn:
        found = find_thread(conn, app, parsed, addresses, copies)
    if found.match.ticket_id is not None:
        merged = "".join(f", which [#{named}] was merged into" for named, final in found.redirected.items()
                         if final == found.match.ticket_id)
        result.follow_up = f"joins ticket [#{found.match.ticket_id}]{merged} (matched by {found.match.matched_by})"
        if found.unvouched is not None:
            result.follow_up += f", kept apart, changing nothing: {found.unvouched} (customer_auth)"
    elif found.refused_tags:
        named = ", ".join(f"[#{t}]" for t in found.refused_tags)
        result.refused_tags = f"names {named}, where its From takes part, but {found.refused_because} (customer_auth)"


def dry_run(rules: RuleSet, parsed: ParsedMail, now: datetime, engine: Engine | None = None,
            app: App | None = None, settings: Settings | None = None, raw: bytes | None = None) -> DryRun:
    """What `rules` would do with the mail; with `engine`, the database's cursor; with `app`, its threading too
    (and, given its `raw` bytes, whether it is kept already); with `settings` (or `app`'s), which addresses
    are ours."""
    settings = settings or (app.settings if app is not None else None)
    robot_fields = parsed.header_values
    if settings is not None:   # as the daemon reads it: relayed by our own list, its writer in From
        parsed, robot_fields = as_written(settings, parsed)
    key_facts = key_facts_of(parsed)
    decision = rules.route(facts_of(parsed, key_facts))
    result = DryRun(decision, key_facts)
    if app is not None:
        thread_of(app, parsed, result, raw)
    # A file has no SMTP envelope: its Return-Path is the envelope sender, as for mail fetched by IMAP.
    result.robot_reason = auto_generated_reason(robot_fields, parsed.headers.get("return-path"),
                                                parsed.from_addr, parsed.content_type)

    def ours(address: str | None) -> bool:   # unknown without the daemon's settings
        return settings is not None and is_our_address(address, settings.support_address,
                                                       settings.smtp.extra_addresses)

    def not_a_customer(address: str) -> bool:
        return ours(address) or rules.agent(address) is not None

    result.requester = requester_of_mail(parsed, parsed.headers.get("return-path"),
                                         use_reply_to=decision.requester == "reply_to",
                                         not_a_customer=not_a_customer)
    # As ticketd.prepare and ticketd.conversation.open_ticket: a person writing From our own address.
    if result.robot_reason is None and ours(parsed.author) and not result.requester.from_reply_to:
        result.robot_reason = own_address_reason(parsed.author)
        result.requester = written_to(parsed.to + parsed.cc, parsed.recipient_names, not_a_customer)
        result.requester_why = why_written_to(parsed.author, result.requester.address)
    if decision.close:
        return result   # stored closed: nothing is assigned, timed or sent
    # As ticketd.conversation.open_ticket: a route's assignee away or at max_open leaves the ticket to the
    # route's group; without one, the daemon gives it to them all the same, and the admin should know.
    unable = _unable(rules, decision.assignee, now, engine) if decision.assignee else None
    if decision.assignee and not (unable and decision.group):
        result.agent, result.agent_how = decision.assignee, "assignee set by the route"
        if unable is not None:
            result.agent_how += f", who is {unable}: the ticket goes to them all the same"
    elif decision.group and decision.group in rules.groups:
        last, counts, members = (_cursor_and_counts(engine, rules, decision.group, now) if engine is not None
                                 else (None, {}, rules.members(decision.group)))
        strategy = rules.groups[decision.group].assign
        agent = next_agent(strategy, members, last, counts)
        result.agent = agent.email if agent else None
        source = "the database's cursor" if engine is not None else "no database: first eligible"
        result.agent_how = f"{strategy} in {decision.group}, from {source}"
        if unable is not None:
            result.agent_how = f"the route's assignee {decision.assignee} is {unable}, so {result.agent_how}"
    result.timers = _timer_lines(rules, now, awaits_answer=result.robot_reason is None)
    if result.robot_reason is None and not decision.suppress_ack and result.requester.address:
        result.mails.append(f"requester/ticket_opened to {result.requester.address}")
    if result.agent:
        result.mails.append(f"agent/ticket_assigned to {result.agent}")
    return result


def _timer_lines(rules: RuleSet, now: datetime, *, awaits_answer: bool) -> list[str]:
    """The timers of `new` the daemon arms on the ticket (ticketd.timers.on_ticket_opened), one line each.

    Mail not answered (automatic, or from our own address) waits for no
    answer, so the daemon starts no respond clock for it (docs/rules.md,
    respond_within); the line says so rather than show one that never runs.
    """
    spec = rules.timer(Status.NEW.value)
    lines = []
    for planned in plan_of.plan(Status.NEW.value, spec, now, business_hours=rules.business_hours):
        what = plan_of.describe(planned.kind, Status.NEW.value, spec)
        if planned.kind == plan_of.RESPOND and not awaits_answer:
            lines.append(f"none: {what} starts no clock, since no answer is ever sent (not answered, below)")
            continue
        lines.append(f"{what}, due {planned.due_at.isoformat(timespec='seconds')}Z, on breach: {spec.on_breach}")
    return lines


def mail_lines(rules: RuleSet, raw: bytes, now: datetime, engine: Engine | None = None, app: App | None = None,
               settings: Settings | None = None) -> list[str]:
    """What `ticketd rules test` prints for one mail file: which mail, then what the daemon would do with it.

    A mail past the MIME limits (the daemon's, with `settings`; else the
    defaults) is quarantined whole before any rule sees it; the line says
    so with the reason `ticketd quarantine list` would show (ticketd.prepare
    words it so), and the dry run has done its job: exit 0, as for any
    other outcome (docs/rules.md).
    """
    limits = dict(max_depth=settings.max_mime_depth, max_parts=settings.max_mime_parts) if settings else {}
    try:
        parsed = parse_mail(raw, **limits)
    except MailTooComplex as exc:
        message_id = dedupe_key(raw)[1]
        return [f"mail: {message_id or '(no Message-ID)'}",
                f"would be quarantined: {type(exc).__name__}: mail refused by the MIME limits: {exc}"]
    return [f"mail: {parsed.message_id or '(no Message-ID)'} from {parsed.from_addr or '?'}: {parsed.subject!r}",
            *dry_run(rules, parsed, now, engine, app, settings, raw).lines()]
