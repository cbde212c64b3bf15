"""`ticketd agents`: who is away and who holds how much; an absence set for one."""

from __future__ import annotations

import click

from ticketd.cli.common import config_option, json_option, open_app, print_json


@click.group()
def agents() -> None:
    """The agents in rules.yaml: who is away, who holds how much; an absence set for one."""


@agents.command("list")
@config_option
@json_option
def agents_list(config: str | None, as_json: bool) -> None:
    """Every agent: groups, open tickets, away (rules.yaml's or their own #away), their desk address."""
    from ticketd.agents import agents_now
    from ticketd.clock import utcnow

    listed = agents_now(open_app(config), utcnow())
    if as_json:
        print_json(listed)
        return
    for a in listed:
        if a["absence"]:
            until = a["absence"]["until"]
            away = f"away until {until}" if until else "away until #back"
        else:
            away = "away (rules.yaml)" if a["away_in_rules"] else ("available" if a["available"] else "full")
        limit = f"/{a['max_open']}" if a["max_open"] is not None else ""
        # The desk address (all of one length) before the groups, whose list is the one column of any width.
        click.echo(f"{a['email']:<32} {away:<36} open {a['open_tickets']}{limit:<5} {a['desk_address']}  "
                   f"{','.join(a['groups'])}")


def _agent(app, email: str):
    agent = app.rules.agent(email)
    if agent is None:
        raise click.ClickException(f"{email} is not an agent in {app.settings.rules_file} "
                                   f"(agents: {', '.join(a.email for a in app.rules.agents) or 'none'})")
    return agent


@agents.command("away")
@click.argument("email")
@click.option("--until", "until_text", metavar="WHEN",
              help="a duration (3d, 12h, 2w) or an ISO date or time (in the agent's timezone from rules.yaml), "
                   "at most 3650d ahead; without it, until `agents back`")
@config_option
def agents_away(email: str, until_text: str | None, config: str | None) -> None:
    """Mark an agent away, as their own #away does: round robin and reassignment skip them."""
    from ticketd.agents import set_away
    from ticketd.clock import iso, utcnow
    from ticketd.domain.timers import TooFarAhead, read_ahead

    app = open_app(config, writes=True)
    agent = _agent(app, email)
    now = utcnow()
    try:   # bounded as the agent's own #away is (docs/rules.md: at most 3650d ahead)
        until = read_ahead(until_text, now, app.rules.zone_of(agent.email)) if until_text else None
    except TooFarAhead as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    if until_text and until is None:
        raise click.BadParameter(f"{until_text!r} is not a duration or an ISO date", param_hint="--until")
    if until is not None and until <= now:
        raise click.BadParameter(f"{until_text!r} is in the past", param_hint="--until")
    set_away(app, agent.email, until, now)
    click.echo(f"{agent.email} is away until {iso(until) if until else '`ticketd agents back`'}")


@agents.command("back")
@click.argument("email")
@config_option
def agents_back(email: str, config: str | None) -> None:
    """End an agent's absence set by #away or `agents away` (rules.yaml's `away:` stays the file's)."""
    from ticketd.agents import set_back

    app = open_app(config, writes=True)
    agent = _agent(app, email)
    set_back(app, agent.email)
    if agent.away:   # the file's `away: true` outlasts any absence of their own: they take nothing yet
        click.echo(f"{agent.email}'s own absence is over, but {app.settings.rules_file} marks them away "
                   "(away: true): they take no new tickets until that is changed there")
        return
    click.echo(f"{agent.email} takes new tickets again (waiting tickets go out at the daemon's next sweep)")
