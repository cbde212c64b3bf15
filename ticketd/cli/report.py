"""`ticketd report`: the desk's figures over the last N days, in all and per agent."""

from __future__ import annotations

import click

from ticketd.cli.common import COUNT, config_option, json_option, open_engine, print_json, read_settings


@click.command()
@click.option("--days", type=COUNT, default=30, show_default=True, help="the window: the last N days")
@config_option
@json_option
def report(days: int, config: str | None, as_json: bool) -> None:
    """The desk's figures: tickets in and out, first reply and resolution times, breaches, ratings, per agent."""
    from ticketd.domain.report import human_duration
    from ticketd.report import desk_report
    from ticketd.rules_file import RulesError, load_rules

    settings = read_settings(config)
    try:   # the agents with nothing in the window are listed too; a broken file only leaves them out
        agents = [a.email for a in load_rules(settings.rules_file).agents] if settings.rules_file.exists() else []
    except RulesError:
        agents = []
    days = min(days, 36500)   # a longer window than a century reaches before any ticket: it is all of them
    figures = desk_report(open_engine(config, settings), days, agents)
    if as_json:
        print_json(figures)
        return

    def times(d: dict) -> str:
        return f"median {human_duration(d['median_seconds'])}, 90% within {human_duration(d['p90_seconds'])}"

    def stars(r: dict) -> str:
        return "-" if not r["count"] else f"{r['usefulness']:.1f}/{r['speed']:.1f}/{r['politeness']:.1f}"

    t, first, done, rated, reacted = (figures[k] for k in ("tickets", "first_response", "resolution", "ratings",
                                                           "reactions"))
    click.echo(f"the last {'day' if days == 1 else f'{days} days'}, {figures['since']} to {figures['until']}")
    click.echo(f"tickets      created {t['created']}, closed {t['closed']}, reopened {t['reopened']}, "
               f"timer breaches {t['timer_breaches']}; open now {t['open_now']} (unassigned {t['unassigned_now']})")
    click.echo(f"first reply  {times(first)} ({first['count']} answered, {first['not_answered_yet']} not yet)")
    click.echo(f"resolution   {times(done)} ({done['count']} closed)")
    click.echo(f"ratings      {rated['count']} (usefulness/speed/politeness {stars(rated)}); "
               f"reactions {reacted['like']} like, {reacted['dislike']} dislike")
    click.echo(f"\n{'agent':<32} {'open':>5} {'closed':>6}  {'first reply':<11}  {'resolution':<10}  "
               f"{'rating u/s/p':<12}  like/dislike")
    for name, a in figures["agents"].items():
        click.echo(f"{name:<32} {a['open_now']:>5} {a['closed']:>6}  "
                   f"{human_duration(a['first_response']['median_seconds']):<11}  "
                   f"{human_duration(a['resolution']['median_seconds']):<10}  {stars(a['ratings']):<12}  "
                   f"{a['reactions']['like']}/{a['reactions']['dislike']}")
