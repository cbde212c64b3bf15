"""Mail to an agent's desk address: `#away` and `#back` applied and the agent told where they stand; `#summary`.

The desk address (`ingest.match.desk_address`) is the Reply-To of mail
about no one ticket (the daily summary). Like a ticket's reply address it
counts only for the agent it was signed for, writing from their own address
(`ticketd.domain.authority`); anyone else's mail to it is ordinary customer
mail. A desk mail opens no ticket: its raw mail is kept, done, with none.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ingest.match import ReplyAddress, desk_address
from ingest.parse import ParsedMail
from ticketd.app import App
from ticketd.daily_summary import summary_notices
from ticketd.domain.absence import DESK_USAGE, DeskRefusal, DeskRequest, read_desk_mail
from ticketd.domain.authority import agent_authority
from ticketd.domain.notices import AUTO_REPLIED, Notice
from ticketd.domain.rules import Agent
from ticketd.mail_proof import agent_proof
from ticketd.store import absences
from ticketd.store.assignment import open_counts

log = logging.getLogger("ticketd.agent_desk")

TEMPLATE = "agent/desk_reply"


def desk_agent(app: App, parsed: ParsedMail, addresses: list[ReplyAddress]) -> Agent | None:
    """The agent whose desk address the mail came through, if it is that agent's mail (PRODUCT.md checks)."""
    desk = next((a for a in addresses if a.desk), None)
    if desk is None:
        return None
    verdict = agent_authority(
        from_addr=parsed.from_addr, from_count=parsed.from_count, reply_fingerprint=desk.agent_fingerprint,
        agent_emails=[a.email for a in app.rules.agents], proof=agent_proof(app.settings, parsed))
    return app.rules.agent(verdict.agent) if verdict.agent else None


def _when(at: datetime | None, zone: str = "UTC") -> str | None:
    """A stored (naive UTC) time in the agent's zone, named: `2030-12-01 09:00 Europe/Berlin`."""
    return f"{at.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}" if at else None


def apply_desk_mail(conn, app: App, agent: Agent, parsed: ParsedMail, text: str, now: datetime) -> list[Notice]:
    """Apply the mail's `#away` or `#back` and answer with where the agent stands (even for no command).

    `#summary` is answered with the agent's daily summary as of now, even
    an empty one: it changes nothing.
    """
    zone = app.rules.zone_of(agent.email)
    request = read_desk_mail(text, now, zone)
    if isinstance(request, DeskRequest) and request.action == "summary":
        return [replace(n, auto_submitted=AUTO_REPLIED, in_reply_to=parsed.message_id)
                for n in summary_notices(conn, app, [agent], now, even_empty=True)]
    context: dict = {"agent_name": agent.name, "usage": list(DESK_USAGE.values()), "error": None, "line": None,
                     "away_by_rules": agent.away}
    if isinstance(request, DeskRefusal):
        context.update(outcome="refused", error=request.error, line=request.line)
    elif request.action == "away":
        absences.set_absence(conn, agent.email, now, request.until)
        context["outcome"] = "away"
        log.info("%s is away until %s, by mail", agent.email, _when(request.until, zone) or "#back")
    elif request.action == "back":
        was = absences.absence_of(conn, agent.email, now)
        absences.end_absence(conn, agent.email)
        context["outcome"] = "back" if was else "unchanged"
        if was:
            log.info("%s is back, by mail", agent.email)
    else:
        context["outcome"] = "show"
    standing = absences.absence_of(conn, agent.email, now)
    context.update(
        away=standing is not None, since=_when(standing[0], zone) if standing else None,
        until=_when(standing[1], zone) if standing else None,
        open_tickets=open_counts(conn, [agent.email]).get(agent.email, 0),
        desk_address=desk_address(app.signer, app.settings.support_address, agent.email))
    # A reply to the agent's own mail: auto-replied (RFC 3834 section 5), as a command's answer is.
    return [Notice(template=TEMPLATE, recipient=agent.email, ticket_id=None, context=context,
                   auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=parsed.message_id)]
