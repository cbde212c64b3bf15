"""The `ticketd` command: run the daemon and workers, inspect tickets, rules, quarantine."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from ticketd.domain.statuses import Status
from ticketd.settings import environment_sources, load_settings

CONFIG_HELP = "ticketd.yaml (default: $TICKETD_CONFIG, else ./ticketd.yaml if present)"

# The options most commands share.
config_option = click.option("--config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


def _settings(config: str | None):
    if config is None and not os.environ.get("TICKETD_CONFIG") and Path("ticketd.yaml").exists():
        config = "ticketd.yaml"
    try:
        return load_settings(config)
    except ValidationError as exc:
        sources = environment_sources(dict(os.environ))
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            origin = next((name for key, name in sources.items() if where == key or where.startswith(key + ".")),
                          None)
            problems.append(f"  {where}: {error['msg']}" + (f" (from {origin})" if origin else ""))
        raise click.ClickException(f"{config or 'settings'} is not valid:\n" + "\n".join(problems)) from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read settings: {exc}") from None


def _app(config: str | None):
    from ticketd.app import build_app
    from ticketd.rules_file import RulesError
    from ticketd.store.migrations import SchemaVersionError

    settings = _settings(config)
    # Before the schema is checked, so that the upgrade steps it applies are logged.
    configure_logging(settings.log_level)
    try:
        return build_app(settings)
    except RulesError as exc:
        raise click.ClickException(f"{settings.rules_file} is not valid:\n" + "\n".join(exc.errors)) from None
    except SchemaVersionError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(config: str | None):
    """The database alone, for commands that only read it: a broken rules.yaml must not hide the tickets."""
    from ticketd.store.db import ensure_schema, make_engine
    from ticketd.store.migrations import SchemaVersionError

    engine = make_engine(_settings(config).database_url)
    try:
        ensure_schema(engine)
    except SchemaVersionError as exc:
        raise click.ClickException(str(exc)) from None
    return engine


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # aiosmtpd logs three INFO lines per connection; ticketd logs each mail itself.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.group()
@click.version_option(package_name="ticketd")
def main() -> None:
    """ticketd: a help-desk that lives in email."""


@main.command()
@config_option
def run(config: str | None) -> None:
    """The daemon: SMTP receiver, IMAP pollers, timers, and in-process workers."""
    from ticketd.daemon import run as run_daemon

    sys.exit(run_daemon(_app(config)))


@main.command()
@config_option
@click.option("--threads", default=4, show_default=True, help="worker threads in this process")
def worker(config: str | None, threads: int) -> None:
    """dramatiq workers for Redis mode (run any number, on any host)."""
    from ticketd.daemon import run_worker

    app = _app(config)
    if not app.settings.redis_url:
        raise click.UsageError("redis_url is null: `ticketd run` already runs the workers in-process")
    sys.exit(run_worker(app, threads))


# ---------------------------------------------------------------- tickets


@main.group()
def tickets() -> None:
    """Look at tickets."""


@tickets.command("list")
@config_option
@click.option("--status", type=click.Choice([s.value for s in Status]), help="only tickets in this status")
@json_option
def tickets_list(config: str | None, status: str | None, as_json: bool) -> None:
    """Tickets, newest first."""
    from ticketd.views import list_tickets

    rows = list_tickets(_engine(config), status)
    if as_json:
        _print_json(rows)
        return
    for t in rows:
        click.echo(f"{t['tag']:>8}  {t['status']:<18} {t['priority']:<7} {t['assignee'] or '-':<24} "
                   f"{t['requester']:<28} {t['subject']}")


@tickets.command("show")
@click.argument("ticket_id", type=int)
@config_option
@json_option
def tickets_show(ticket_id: int, config: str | None, as_json: bool) -> None:
    """One ticket with its messages and history."""
    from ticketd.views import show_ticket

    ticket = show_ticket(_engine(config), ticket_id)
    if ticket is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        _print_json(ticket)
        return
    click.echo(f"{ticket['tag']} {ticket['subject']}")
    click.echo(f"status {ticket['status']}, priority {ticket['priority']}, type {ticket['type'] or '-'}, "
               f"assignee {ticket['assignee'] or '-'}, group {ticket['group'] or '-'}")
    click.echo(f"requester {ticket['requester']}; followers {', '.join(ticket['followers']) or '-'}")
    for m in ticket["messages"]:
        flag = " (internal)" if m["internal"] else ""
        click.echo(f"\n--- {m['direction']} {m['created_at']} {m['from']}{flag} [{m['matched_by'] or '-'}]")
        click.echo(m["text"])
        for a in m["attachments"]:
            click.echo(f"    [attachment] {a['filename']} ({a['size']} bytes, sha256 {a['sha256'][:12]})")
    click.echo("\nhistory:")
    for e in ticket["events"]:
        change = f" {e['from'] or ''} -> {e['to']}" if e["to"] else ""
        click.echo(f"  {e['at']} {e['actor']}: {e['kind']}{change}" + (f" ({e['reason']})" if e["reason"] else ""))


# ---------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Check and try out rules.yaml."""


def _rules_path(file: str | None, config: str | None) -> Path:
    if file:
        return Path(file)
    return _settings(config).rules_file   # a broken config is an error, not a cue to check ./rules.yaml


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@config_option
def rules_check(file: str | None, config: str | None) -> None:
    """Validate rules; exit 1 and print every error (file:line:column: path: what to write)."""
    from ticketd.rules_file import RulesError, load_rules, summary

    path = _rules_path(file, config)
    try:
        loaded = load_rules(path)
    except RulesError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        click.echo(f"{path}: {len(exc.errors)} error(s); nothing would be applied", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK: {summary(loaded)}")


@rules.command("test")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("mail", type=click.Path(dir_okay=False, exists=True))
@click.option("--config", type=click.Path(dir_okay=False),
              help="read the round-robin cursor from this daemon's database (read only)")
def rules_test(file: str, mail: str, config: str | None) -> None:
    """Dry run: which route and timers would apply to MAIL, and what would be sent. Writes nothing."""
    from ingest.parse import parse_mail
    from ticketd.clock import utcnow
    from ticketd.rules_dryrun import dry_run
    from ticketd.rules_file import RulesError, load_rules

    try:
        loaded = load_rules(file)
    except RulesError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(1)
    engine = None
    if config or Path("ticketd.yaml").exists():
        from ticketd.store.assignment import has_cursor_table
        from ticketd.store.db import make_engine, sqlite_file

        url = _settings(config).database_url
        missing = sqlite_file(url)
        if missing is None or missing.exists():   # opening a SQLite file that is not there would create it
            engine = make_engine(url)
            if not has_cursor_table(engine):
                engine = None
    parsed = parse_mail(Path(mail).read_bytes())
    click.echo(f"mail: {parsed.message_id or '(no Message-ID)'} from {parsed.from_addr or '?'}: {parsed.subject!r}")
    for line in dry_run(loaded, parsed, utcnow(), engine).lines():
        click.echo(line)


# ---------------------------------------------------------------- status


@main.command()
@config_option
@json_option
def status(config: str | None, as_json: bool) -> None:
    """Is mail flowing: mail waiting to be processed, mail waiting to be sent, timers, tickets."""
    from ticketd.views import desk_status

    desk = desk_status(_engine(config))
    if as_json:
        _print_json(desk)
        return

    def oldest(seconds) -> str:
        return "" if seconds is None else f" (oldest {seconds:.0f} s)"

    inbox, outbox, timers = desk["inbox"], desk["outbox"], desk["timers"]
    click.echo(f"inbox    waiting {inbox['waiting']}{oldest(inbox['oldest_waiting_seconds'])}, processing "
               f"{inbox['processing']}, quarantined {inbox['quarantined']}, done {inbox['done']}")
    click.echo(f"outbox   pending {outbox['pending']}, sending {outbox['sending']}"
               f"{oldest(outbox['oldest_unsent_seconds'])}, failed {outbox['failed']}, sent {outbox['sent']}")
    click.echo("tickets  " + ", ".join(f"{name} {n}" for name, n in desk["tickets"].items()))
    click.echo(f"timers   armed {timers['armed']}, overdue {timers['overdue']}, "
               f"next due {timers['next_due_at'] or '-'}")


# ---------------------------------------------------------------- quarantine


@main.group()
def quarantine() -> None:
    """Mail that could not be processed, kept whole with the reason."""


@quarantine.command("list")
@config_option
@json_option
def quarantine_list(config: str | None, as_json: bool) -> None:
    """Quarantined mail, oldest first."""
    from ticketd.views import list_quarantine

    rows = list_quarantine(_engine(config))
    if as_json:
        _print_json(rows)
        return
    for q in rows:
        first_line = (q["reason"] or "").splitlines()[0] if q["reason"] else ""
        click.echo(f"{q['id']:>6}  {q['received_at']}  {q['size']:>9}  {q['message_id'] or '-'}  {first_line}")


@quarantine.command("retry")
@click.argument("raw_id", type=int)
@config_option
def quarantine_retry(raw_id: int, config: str | None) -> None:
    """Re-drive one quarantined mail through processing now."""
    from ticketd.pipeline import process_raw
    from ticketd.store.inbox import requeue

    app = _app(config)
    if not requeue(app.engine, raw_id):
        raise click.ClickException(f"mail {raw_id} is not in quarantine")
    outcome = process_raw(app, raw_id)
    if outcome is None:
        click.echo(f"mail {raw_id} was taken by the running daemon")
    elif outcome.quarantined:
        click.echo(f"mail {raw_id} failed again and stays in quarantine:\n{outcome.quarantined}", err=True)
        sys.exit(1)
    else:
        click.echo(f"mail {raw_id} processed: ticket {outcome.ticket_id} ({outcome.matched_by})")


if __name__ == "__main__":
    main()
