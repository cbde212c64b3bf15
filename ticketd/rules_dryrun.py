"""`ticketd rules test`: what a rule set would do with one real mail, without writing anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ingest.parse import ParsedMail
from ticketd.domain import timers as plan_of
from ticketd.domain.assignment import next_agent
from ticketd.domain.loops import auto_generated_reason
from ticketd.domain.rules import MailFacts, RouteDecision, RuleSet
from ticketd.domain.statuses import Status
from ticketd.store.assignment import open_counts, read_cursor
from ticketd.store.db import reading

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass
class DryRun:
    decision: RouteDecision
    agent: str | None = None
    agent_how: str = ""
    timers: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    robot_reason: str | None = None

    def lines(self) -> list[str]:
        out = []
        if not self.decision.routes:
            out.append("route: none matched")
        for name, reasons in self.decision.reasons:
            out.append(f"route: {name!r} matched because " + "; ".join(reasons))
        d = self.decision
        out.append(f"group: {d.group or '-'}  priority: {d.priority or 'normal'}  type: {d.type or '-'}  "
                   f"tags: {', '.join(d.tags) or '-'}  acknowledgement: {'suppressed' if d.suppress_ack else 'sent'}")
        out.append(f"agent: {self.agent or 'nobody available, the ticket would wait unassigned'}"
                   + (f" ({self.agent_how})" if self.agent_how else ""))
        out.extend(f"timer: {t}" for t in self.timers or ["none for status new"])
        out.extend(f"mail: {m}" for m in self.mails or ["none"])
        if self.robot_reason:
            out.append(f"not answered: {self.robot_reason}")
        return out


def facts_of(parsed: ParsedMail) -> MailFacts:
    return MailFacts(from_addr=parsed.from_addr or "", to=", ".join(parsed.to), cc=", ".join(parsed.cc),
                     subject=parsed.subject, body=parsed.text, headers=parsed.headers)


def _cursor_and_counts(engine: Engine, rules: RuleSet, group: str) -> tuple[str | None, dict[str, int]]:
    with reading(engine) as conn:   # read only: nothing is locked, nothing written
        return read_cursor(conn, group), open_counts(conn, (a.email for a in rules.members(group)))


def dry_run(rules: RuleSet, parsed: ParsedMail, now: datetime, engine: Engine | None = None) -> DryRun:
    decision = rules.route(facts_of(parsed))
    result = DryRun(decision)
    result.robot_reason = auto_generated_reason(parsed.headers, parsed.headers.get("return-path"),
                                                parsed.from_addr, parsed.content_type)
    if decision.assignee:
        result.agent, result.agent_how = decision.assignee, "assignee set by the route"
    elif decision.group and decision.group in rules.groups:
        last, counts = _cursor_and_counts(engine, rules, decision.group) if engine is not None else (None, {})
        strategy = rules.groups[decision.group].assign
        agent = next_agent(strategy, rules.members(decision.group), last, counts)
        result.agent = agent.email if agent else None
        source = "the database's cursor" if engine is not None else "no database: first eligible"
        result.agent_how = f"{strategy} in {decision.group}, from {source}"
    for planned in plan_of.plan(Status.NEW.value, rules.timer(Status.NEW.value), now,
                                business_hours=rules.business_hours):
        what = plan_of.describe(planned.kind, Status.NEW.value, rules.timer(Status.NEW.value))
        on_breach = rules.timer(Status.NEW.value).on_breach
        result.timers.append(f"{what}, due {planned.due_at.isoformat(timespec='seconds')}Z, on breach: {on_breach}")
    if result.robot_reason is None and not decision.suppress_ack and parsed.from_addr:
        result.mails.append(f"requester/ticket_opened to {parsed.from_addr}")
    if result.agent:
        result.mails.append(f"agent/ticket_assigned to {result.agent}")
    return result
