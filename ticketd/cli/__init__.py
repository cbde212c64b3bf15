"""The `ticketd` command: run the daemon and workers, inspect tickets, rules, quarantine."""

from __future__ import annotations

import sys

import click

from ticketd.cli import agents, erasure, outbox, quarantine, report, rules, status, tickets
from ticketd.cli.common import COUNT, DATABASE_URL_KEY, config_option, open_app, tolerate_the_terminal


class _Commands(click.Group):
    """The command group; a database it cannot connect to, or locked by another session, is one line naming it,
    not a driver's traceback."""

    def invoke(self, ctx: click.Context):
        from ticketd.store.errors import Unreachable, database_problem

        try:
            return super().invoke(ctx)
        except Unreachable as exc:
            raise click.ClickException(database_problem(ctx.meta.get(DATABASE_URL_KEY), exc)) from None


@click.group(cls=_Commands)
@click.version_option(package_name="ticketd")
def main() -> None:
    """ticketd: a help-desk that lives in email."""
    tolerate_the_terminal()


@main.command()
@config_option
def run(config: str | None) -> None:
    """The daemon: SMTP receiver, IMAP pollers, timers, and in-process workers."""
    from ticketd.daemon import run as run_daemon

    sys.exit(run_daemon(open_app(config, starts_daemon=True)))


@main.command()
@config_option
@click.option("--threads", default=4, show_default=True, type=COUNT,
              help="worker threads in this process")
def worker(config: str | None, threads: int) -> None:
    """dramatiq workers for Redis mode (run any number, on any host)."""
    from ticketd.daemon import run_worker

    app = open_app(config, starts_daemon=True)
    if not app.settings.redis_url:
        raise click.UsageError("redis_url is null: `ticketd run` already runs the workers in-process")
    sys.exit(run_worker(app, threads))


# The other commands, a module each (`tickets delete` beside `forget`: both erase, and confirm alike).
tickets.tickets.add_command(erasure.tickets_delete)
for command in (tickets.tickets, agents.agents, rules.rules, rules.templates, status.status, outbox.outbox,
                quarantine.quarantine, erasure.forget, report.report):
    main.add_command(command)
