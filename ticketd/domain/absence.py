"""An agent's desk address: `#away`, `#back` and `#summary` read from a mail, and what an absence means (pure).

rules.yaml's `away:` is the admin's switch. An agent going on leave should
not need an admin: they write `#away 2w` (or `#away 2030-12-01`, back on that
day, or `#away` alone, until `#back`) to their desk address, the Reply-To
of their daily summary. While away they are skipped wherever rules.yaml's
`away: true` skips them (round robin, reassignment after a breach, the daily
summary); the tickets they hold stay theirs, and a ticket's respond timer
hands it on should it wait for them. `#summary` asks for the daily summary
now. `#assign` naming an agent who is away is refused (`assign_refusals`):
the ticket would wait where nobody reads it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from ticketd.domain.assignment import available
from ticketd.domain.commands import DESK_COMMANDS, meant_command, read_agent_reply, stray_commands
from ticketd.domain.rules import Agent, RuleSet
from ticketd.domain.timers import TooFarAhead, local_time, read_ahead

DESK_USAGE = {
    "away": "#away  (until you write #back), #away 5d  (a duration: h, d or w), "
            "or #away 2030-12-01  (an ISO date: back at its start, in your time zone)",
    "back": "#back  (you take new tickets again)",
    "summary": "#summary  (your open tickets and those waiting in your groups, now)",
}


@dataclass(frozen=True)
class DeskRequest:
    """What one mail to an agent's desk address asks for."""
    action: str                      # away | back | summary | show (no command: what stands, and how to change it)
    until: datetime | None = None    # for away: None until #back


@dataclass(frozen=True)
class DeskRefusal:
    """Why the mail's commands were not applied, with the line that was wrong."""
    line: str
    error: str


# What a ticket's command at the desk is told.
_NOT_HERE = ("#{name} is not a command at this address, which knows only #away, #back and #summary; a ticket's "
             "commands go in a reply to that ticket's mail.")


def read_desk_mail(text: str, now: datetime, zone: str = "UTC") -> DeskRequest | DeskRefusal:
    """The request in the command lines at the top of the agent's mail (`read_agent_reply`'s rules).

    As on a ticket, `#away: 2w` and `# away 2w` are `#away 2w`, and a line
    that looks like a command but reads as none (`#away.`, `## away 2w`), or
    a command under other text ("Hi," over `#away 2w`), is refused saying
    so: answered with where the agent stands, it read as if applied, and an
    agent who believed themselves away went on getting tickets.
    `#away` dates are read in `zone`, the agent's time zone.
    """
    reply = read_agent_reply(text, desk=True)
    commands = reply.commands
    for line in reply.unreadable:
        near = meant_command(line, desk=True)
        return DeskRefusal(line, f"cannot be read as a command (#{near}? write '#', the command's name, then a "
                                 "space or a colon and what it takes), so nothing was changed."
                           + ("" if near in DESK_COMMANDS else " " + _NOT_HERE.format(name=near)))
    if len(commands) > 1:
        return DeskRefusal(commands[1].line, "one command per mail here: #away, #back or #summary.")
    for line in stray_commands(reply.body, desk=True):
        name = read_agent_reply(line, desk=True).commands[0].name
        if commands:
            fix = f"and {commands[0].line} above it is one already: send one command per mail, on its first line."
        elif name in DESK_COMMANDS:
            fix = "write it on the mail's first line, above any other text."
        else:
            fix = "and " + _NOT_HERE.format(name=name)
        return DeskRefusal(line, "below other text (a greeting, say) a line is not read as a command, so nothing "
                                 "was changed; " + fix)
    if not commands:
        return DeskRequest("show")
    command = commands[0]
    if command.name in ("back", "summary"):
        if command.args:
            return DeskRefusal(command.line, f"#{command.name} takes nothing on its line.")
        return DeskRequest(command.name)
    if command.name != "away":
        return DeskRefusal(command.line, _NOT_HERE.format(name=command.name))
    # `Until` as a mail client capitalises it is `until`, as `#Away` is `#away`.
    written = command.args[len("until "):].strip() if command.args.lower().startswith("until ") else command.args
    if not written:
        return DeskRequest("away")
    try:
        until = read_ahead(written, now, zone)
    except TooFarAhead as exc:
        return DeskRefusal(command.line, str(exc))
    if until is None:
        return DeskRefusal(command.line, f"{written!r} is not a duration or an ISO date.")
    if until <= now:
        return DeskRefusal(command.line, f"{written!r} is in the past; give the time you are back.")
    return DeskRequest("away", until)


def is_absent(until: datetime | None, now: datetime) -> bool:
    """Whether an absence row with this `until` still holds at `now` (NULL: until #back)."""
    return until is None or until > now


def with_absences(rules: RuleSet, absent: Collection[str]) -> RuleSet:
    """The rule set with the agents in `absent` away, as if rules.yaml said so; `rules` itself when none is."""
    if not any(a.email in absent and not a.away for a in rules.agents):
        return rules
    return replace(rules, agents=tuple(replace(a, away=True) if a.email in absent else a for a in rules.agents))


# How many agents a refused `#assign` offers by name; the rest are in `ticketd agents list`.
OFFERED_AGENTS = 5


def assign_refusals(rules: RuleSet, absent: Mapping[str, tuple[datetime, datetime | None]],
                    open_counts: Mapping[str, int], *, writer: str, zone: str) -> dict[str, str]:
    """Why `#assign` may not name each agent who is away or at their `max_open`, and what to write instead;
    {email: message}.

    PRODUCT.md, "Agents by email": a command that cannot be applied leaves
    the ticket unchanged and the agent is told exactly what was wrong. A
    ticket given to someone away waits unseen until a respond timer hands it
    on. `rules` is rules.yaml's set (its `away: true`), `absent` the agents
    away by their own word (since, until), until-times shown in `zone`, the
    writer's. The writer is never refused: taking a ticket oneself, away or
    not, puts it before someone who reads it. (`ticketd tickets assign`, an
    admin's explicit choice, still gives a ticket to an away agent.) An
    agent at `max_open` takes no new tickets (docs/rules.md), which a route
    naming them respects too; `open_counts` are the agents' open tickets.
    """
    now_rules = with_absences(rules, absent)
    refusals = {}
    for agent in now_rules.agents:
        if agent.away and agent.email != writer:
            if rules.agent(agent.email).away:
                why = "(rules.yaml marks them away; only an admin changes that)"
            elif (until := absent[agent.email][1]) is not None:
                why = f"until {local_time(until, zone)}"
            else:
                why = "until they write #back"
            refusals[agent.email] = (f"{agent.email} is away {why}, so the ticket would wait unseen with them. "
                                     + _instead(now_rules, agent, open_counts, writer))
        elif agent.email != writer and not available(agent, open_counts):
            refusals[agent.email] = (f"{agent.email} has {open_counts.get(agent.email, 0)} open tickets, the "
                                     f"max_open rules.yaml gives them, so they take no new ones. "
                                     + _instead(now_rules, agent, open_counts, writer))
    return refusals


def _instead(rules: RuleSet, away: Agent, open_counts: Mapping[str, int], writer: str) -> str:
    """What to write instead of naming `away`: a group with someone available in it, or such an agent by name."""
    def has_someone(group: str) -> bool:   # other than the writer, whom a group passing the ticket on skips
        return any(a.email != writer and available(a, open_counts) for a in rules.members(group))

    # Their own groups first: the colleagues who do the same work.
    groups = [g for g in away.groups if g in rules.groups and has_someone(g)] or [
        g for g in rules.groups if has_someone(g)]
    named = sorted((a for a in rules.agents if a.email != writer and available(a, open_counts)),
                   key=lambda a: not set(a.groups) & set(away.groups))[:OFFERED_AGENTS]
    ways = []
    if groups:
        ways.append("give it to a group, which picks an available agent by its strategy ("
                    + " or ".join(f"#assign {g}" for g in groups) + ")")
    if named:
        ways.append("name an available agent (" + " or ".join(f"#assign {a.email}" for a in named) + ")")
    if not ways:
        return "And nobody else is available to take it now: keep it until someone is back."
    return "Instead, " + ", or ".join(ways) + "."
