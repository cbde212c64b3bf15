"""The `ticketd` command: run the daemon and workers, inspect tickets, rules, quarantine."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from ticketd.domain.ids import MAX_ID
from ticketd.domain.notices import DELIVERY_FAILED
from ticketd.domain.statuses import Status
from ticketd.settings import environment_sources, load_settings, moved_default_database

CONFIG_HELP = "ticketd.yaml (default: $TICKETD_CONFIG, else ./ticketd.yaml if present)"

# The options most commands share.
# Files are read by the commands themselves: one that cannot be (missing, a directory, unreadable) is
# an error saying why, exit 1 as PRODUCT.md has it, not click's usage error (exit 2).
config_option = click.option("--config", type=click.Path(readable=False), help=CONFIG_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
# A ticket number or a row's id: one no row can have is a usage error, not a query PostgreSQL refuses.
ROW_ID = click.IntRange(min=1, max=MAX_ID)
_DATABASE_URL = "ticketd.database_url"


def _settings(config: str | None):
    if config is None and not os.environ.get("TICKETD_CONFIG") and Path("ticketd.yaml").exists():
        config = "ticketd.yaml"
    try:
        settings = load_settings(config)
    except ValidationError as exc:
        sources = environment_sources(dict(os.environ))
        lines = _key_lines(config)
        problems, from_environment = [], True
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            origin = next((name for key, name in sources.items() if where == key or where.startswith(key + ".")),
                          None)
            # The line in the file, as rules.yaml's errors give it: the nearest key written there.
            loc = tuple(error["loc"])
            line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
            at = f"{config}:{line}: " if line is not None and origin is None else ""
            problems.append(f"  {at}{where}: {error['msg']}" + (f" (from {origin})" if origin else ""))
            from_environment = from_environment and origin is not None
        what = "the settings from TICKETD_ variables are" if from_environment else f"{config or 'settings'} is"
        raise click.ClickException(f"{what} not valid:\n" + "\n".join(problems)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read settings {exc.filename or config}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.ClickException(f"cannot read settings: {exc}") from None
    if (ctx := click.get_current_context(silent=True)) is not None:
        ctx.meta[_DATABASE_URL] = settings.database_url   # for the one-line error when it cannot be reached
    return settings


def _key_lines(config: str | None) -> dict[tuple, int]:
    """The line of each key of the settings file (ticketd.settings.key_lines); empty without one."""
    from ticketd.settings import key_lines

    try:
        return key_lines(Path(config).read_text(encoding="utf-8")) if config else {}
    except (OSError, UnicodeDecodeError):
        return {}


def _app(config: str | None, *, starts_daemon: bool = False, writes: bool = False):
    """The App for a command; `starts_daemon`: a daemon or worker, which refuses to start without rules.yaml
    or with a template override that fails `ticketd templates check`, and alone creates the database.

    A wrong `rules_file` path would otherwise start a desk with no agents,
    routes or timers, whose tickets wait for nobody, said once in the log.
    Any other command needs the daemon's database as `_engine` does
    (`writes`: a command that changes it, which may upgrade it).
    """
    from ticketd.app import build_app
    from ticketd.rules_file import RulesError
    from ticketd.store.migrations import SchemaVersionError

    settings = _settings(config)
    if starts_daemon and (old := moved_default_database(settings)) is not None:
        raise click.ClickException(
            f"no database at {settings.database_url}, where a database_url left out of "
            f"{config or 'the settings'} now puts it (beside the file), but {old} exists, where earlier versions "
            f"put it (the working directory): starting would open a second, empty desk. Set database_url: "
            f"sqlite:///{old} and data_dir: {old.parent} in the file, or move {old.parent} beside it")
    if starts_daemon and not settings.rules_file.is_file():
        raise click.ClickException(
            f"no rules file at {settings.rules_file}: without one no ticket is assigned or timed. Write it "
            "(docs/rules.md; `ticketd rules check` validates it) or point rules_file (TICKETD_RULES_FILE) at it")
    if starts_daemon and settings.templates_dir is not None:
        # A broken override fails every mail that needs it, each sweep again (an assignment that never
        # happens), so the daemon refuses it as it refuses a broken rules.yaml.
        from outbound.template_check import check_templates

        errors = check_templates(settings.templates_dir)[0]
        if errors:
            raise click.ClickException(
                f"templates_dir {settings.templates_dir}: {len(errors)} template(s) fail, and every mail that "
                "needs one would fail:\n" + "\n".join(f"  {line}" for line in errors) +
                "\nFix or remove them; `ticketd templates check` checks them")
    # Before the schema is checked, so that the upgrade steps it applies are logged.
    configure_logging(settings.log_level)
    if not starts_daemon:
        _engine(config, settings, writes=writes).dispose()
    try:
        return build_app(settings, create_schema=starts_daemon)
    except RulesError as exc:
        raise click.ClickException(f"{settings.rules_file} is not valid:\n" + "\n".join(exc.errors)) from None
    except SchemaVersionError as exc:
        raise click.ClickException(str(exc)) from None


def _how_to_upgrade(data_dir: Path) -> str:
    """What upgrades an older database: a `ticketd run` of this ticketd, or a restart of the one running.

    A running daemon of the older code (the package upgraded in place
    under it) holds the database at its version until it is restarted.
    """
    from ticketd.views import daemon_status

    daemon = daemon_status(data_dir)
    if daemon["running"]:
        return (f"the running `ticketd run` (pid {daemon['pid']}) has not upgraded it, being older than this "
                "ticketd: restart it, and it upgrades it as it starts")
    return "start this ticketd's `ticketd run`, which upgrades it"


class _NoDatabase(click.ClickException):
    """No ticketd database where the settings point (status: CRITICAL, the desk has none)."""


def _engine(config: str | None, settings=None, *, writes: bool = False):
    """The daemon's database, for a command other than `run` and `worker`: a broken rules.yaml must not hide
    the tickets.

    Only `ticketd run` and `ticketd worker` create the database (they start
    the desk). Found missing, or without ticketd's tables, it is an error,
    not a new empty database: `tickets list` or `status` run without the
    right --config answering "no tickets" or "healthy" would mislead, and
    leave a stray database (or ticketd's tables in another application's
    PostgreSQL database) behind. A database of an older schema is upgraded
    only for a command that `writes` (it writes what this ticketd writes);
    one that only reads leaves it as it is, as it leaves everything.
    """
    from ticketd.store.db import ensure_schema, make_engine, reading, sqlite_file
    from ticketd.store.errors import shown_url
    from ticketd.store.migrations import LATEST, SchemaVersionError, database_version, upgrade

    settings = settings or _settings(config)
    url = settings.database_url
    where = "is --config (or TICKETD_CONFIG) the daemon's? `ticketd run` creates"
    missing = sqlite_file(url)
    if missing is not None and not missing.exists():
        raise _NoDatabase(f"no database at {missing}: {where} it when it starts")
    engine = make_engine(url)
    try:
        with reading(engine) as conn:
            version = database_version(conn)
            if version is not None and version > LATEST:
                upgrade(conn, version)   # refuses, naming both versions, and changes nothing
        if version is None:
            shown = missing or shown_url(url)
            raise _NoDatabase(f"the database {shown} holds no ticketd tables: {where} them when it starts")
        if version < LATEST and not writes:
            raise click.ClickException(
                f"the database has schema version {version}, and this ticketd reads version {LATEST}: "
                f"{_how_to_upgrade(settings.data_dir)} (README.md, Upgrading); this command only reads and "
                "changes nothing")
        if version < LATEST:
            ensure_schema(engine)
    except SchemaVersionError as exc:
        engine.dispose()
        raise click.ClickException(str(exc)) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # aiosmtpd logs three INFO lines per connection; ticketd logs each mail itself.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


class _Commands(click.Group):
    """The command group; a database it cannot connect to is one line naming it, not a driver's traceback."""

    def invoke(self, ctx: click.Context):
        from ticketd.store.errors import Unreachable, unreachable_message

        try:
            return super().invoke(ctx)
        except Unreachable as exc:
            raise click.ClickException(unreachable_message(ctx.meta.get(_DATABASE_URL), exc)) from None


@click.group(cls=_Commands)
@click.version_option(package_name="ticketd")
def main() -> None:
    """ticketd: a help-desk that lives in email."""


@main.command()
@config_option
def run(config: str | None) -> None:
    """The daemon: SMTP receiver, IMAP pollers, timers, and in-process workers."""
    from ticketd.daemon import run as run_daemon

    sys.exit(run_daemon(_app(config, starts_daemon=True)))


@main.command()
@config_option
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="worker threads in this process")
def worker(config: str | None, threads: int) -> None:
    """dramatiq workers for Redis mode (run any number, on any host)."""
    from ticketd.daemon import run_worker

    app = _app(config, starts_daemon=True)
    if not app.settings.redis_url:
        raise click.UsageError("redis_url is null: `ticketd run` already runs the workers in-process")
    sys.exit(run_worker(app, threads))


# ---------------------------------------------------------------- tickets


@main.group()
def tickets() -> None:
    """Look at tickets."""


@tickets.command("list")
@config_option
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in Status]),
              help="only tickets in this status (repeat for several)")
@click.option("--open", "open_only", is_flag=True, help="only tickets not closed")
@click.option("--assignee", metavar="EMAIL", help="only this agent's tickets; `none`: unassigned ones")
@click.option("--requester", metavar="EMAIL", help="only tickets this address opened")
@click.option("--search", metavar="WORDS",
              help='only tickets holding every word (any case; "a phrase" in double quotes) in their '
                   "subject, a message's text or sender, the requester, or a file's name")
@click.option("--limit", type=click.IntRange(min=1, max=MAX_ID, clamp=True),
              help="at most this many, the newest")
@json_option
def tickets_list(config: str | None, statuses: tuple[str, ...], open_only: bool, assignee: str | None,
                 requester: str | None, search: str | None, limit: int | None, as_json: bool) -> None:
    """Tickets, newest first."""
    from ticketd.domain.search import search_terms
    from ticketd.store.read_models import UNASSIGNED
    from ticketd.views import list_tickets

    terms: list[str] = []
    if search is not None:
        try:
            terms = search_terms(search)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if open_only:
        if Status.CLOSED.value in statuses:
            raise click.UsageError("--open leaves out closed tickets: drop --status closed or --open")
        statuses = statuses or tuple(s.value for s in Status if s is not Status.CLOSED)
    if assignee is not None and assignee.strip().lower() == "none":
        assignee = UNASSIGNED
    rows = list_tickets(_engine(config), limit=limit, statuses=statuses, assignee=assignee, requester=requester,
                        terms=terms)
    if as_json:
        _print_json(rows)
        return
    for t in rows:
        click.echo(f"{t['tag']:>8}  {t['status']:<18} {t['priority']:<7} {t['assignee'] or '-':<24} "
                   f"{t['requester']:<28} {t['subject']}")
        if t.get("hit"):
            click.echo(f"{'':>10}{t['hit']['snippet']}")


@tickets.command("show")
@click.argument("ticket_id", type=ROW_ID)
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
    if ticket["merged_into"] is not None:
        click.echo(f"merged into [#{ticket['merged_into']}]: its conversation and mail to it are there")
    if ticket["merged_from"]:
        click.echo("merged into this one: " + ", ".join(f"[#{t}]" for t in ticket["merged_from"]))
    for m in ticket["messages"]:
        flag = " (internal)" if m["internal"] else ""
        click.echo(f"\n--- {m['direction']} {m['created_at']} {m['from']}{flag} [{m['matched_by'] or '-'}]")
        click.echo(m["text"])
        for a in m["attachments"]:
            click.echo(f"    [attachment] {a['filename']} ({a['size']} bytes, sha256 {a['sha256'][:12]})")
    click.echo("\nhistory:")
    for e in ticket["events"]:
        change = (f" {e['from']} -> {e['to']}" if e["from"] else f" -> {e['to']}") if e["to"] else ""
        click.echo(f"  {e['at']} {e['actor']}: {e['kind']}{change}" + (f" ({e['reason']})" if e["reason"] else ""))


@tickets.command("files")
@click.argument("ticket_id", type=ROW_ID)
@click.option("--out", type=click.Path(file_okay=False), help="copy the files into this directory")
@config_option
@json_option
def tickets_files(ticket_id: int, out: str | None, config: str | None, as_json: bool) -> None:
    """The files customers and agents sent on a ticket; with --out, copies of them (for one too large to mail)."""
    from ticketd.ticket_files import copy_files, files_of
    from ticketd.views import show_ticket

    settings = _settings(config)
    ticket = show_ticket(_engine(config, settings), ticket_id)
    if ticket is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    files = files_of(ticket)
    copied = copy_files(files, settings.attachments_dir, Path(out)) if out else [(f, None) for f in files]
    if as_json:
        _print_json([{**f, "copied_to": str(path) if path else None} for f, path in copied] if out else files)
        return
    if not files:
        click.echo(f"ticket [#{ticket_id}] has no files")
    for f, path in copied:
        if out:
            click.echo(f"{path}" if path else f"{f['filename']}: not on disk (erased), not copied")
            continue
        note = " (internal note)" if f["internal"] else ""
        click.echo(f"message {f['message']} from {f['from']}{note}: {f['filename']} "
                   f"({f['size']} bytes, {f['content_type']}, sha256 {f['sha256'][:12]})")


def _confirm(preview: str, question: str, refusal: str, as_json: bool) -> None:
    """Show what would happen and ask; without a terminal to ask on, refuse (exit 1) saying `refusal`."""
    click.echo(preview, err=as_json)   # stdout stays for the JSON
    if not sys.stdin.isatty():
        raise click.ClickException(refusal)
    click.confirm(question, abort=True, err=as_json)


@tickets.command("merge")
@click.argument("source_id", metavar="SOURCE", type=ROW_ID)
@click.argument("into_id", metavar="INTO", type=ROW_ID)
@click.option("--yes", is_flag=True, help="merge without asking")
@config_option
@json_option
def tickets_merge(source_id: int, into_id: int, yes: bool, config: str | None, as_json: bool) -> None:
    """Merge ticket SOURCE into INTO: its messages, people and tags move there, and SOURCE is closed.

    Mail that names SOURCE (its reply address, its Message-IDs, its tag)
    goes to INTO from then on. Nobody gets mail about the merge.
    """
    from ticketd.merge import MergeRefused, merge

    settings = _settings(config)
    configure_logging(settings.log_level)   # the INFO line of the merge
    engine = _engine(config, settings, writes=True)
    what = f"ticket [#{source_id}] into [#{into_id}]"
    try:
        if not yes:
            preview = merge(engine, source_id, into_id, dry_run=True)
            _confirm(f"would merge {what}: {preview.summary()}", f"Merge {what}? Mail to [#{source_id}] then goes "
                     f"to [#{into_id}]", f"not merged: no terminal to confirm on; run again with --yes to merge "
                     f"{what}", as_json)
        merged = merge(engine, source_id, into_id)
    except MergeRefused as exc:
        raise click.ClickException(f"not merged: {exc}") from None
    if as_json:
        _print_json({"source": source_id, "into": into_id, "moved": merged.counts(), "assignee": merged.assignee})
    else:
        click.echo(f"ticket [#{source_id}] merged into [#{into_id}]: {merged.summary()}; "
                   f"[#{source_id}] is closed")


def _admin_change(config: str | None, change):
    """Run one admin change on the app; AdminRefused becomes the command's error."""
    from ticketd.admin import AdminRefused

    app = _app(config, writes=True)
    try:
        return app, change(app)
    except AdminRefused as exc:
        raise click.ClickException(str(exc)) from None


def _mail_goes(settings, what: str) -> str:
    """Wake the daemon for mail just queued; when `what` (the mail, it, them) goes, for the admin."""
    pid = _wake_daemon(settings.data_dir)
    if pid is None:
        return (f"no `ticketd run` holds {settings.data_dir}/ticketd.pid on this machine: "
                f"the daemon sends {what} at its next outbox sweep")
    if settings.redis_url is None:
        return f"the running `ticketd run` (pid {pid}) sends {what} now"
    # Redis mode: the daemon only enqueues, and a `ticketd worker` sends; "now" would be untrue without one.
    from workers.broker_health import queue_status

    queue = queue_status(settings)
    if not queue["reachable"]:
        held = f"Redis does not answer ({queue['error']}): {what} waits in the outbox until it does"
    elif queue["write_error"]:
        held = f"Redis refuses writes ({queue['write_error']}): {what} waits in the outbox until it takes them"
    elif not queue["workers"]:
        held = f"no `ticketd worker` is running: {what} waits until one starts"
    elif len(queue["workers_without_database"]) >= queue["workers"]:
        held = (f"no running `ticketd worker` reaches the database (`ticketd status` names them): {what} waits "
                f"until one does")
    else:
        return f"the running `ticketd run` (pid {pid}) hands {what} to a `ticketd worker` now"
    return f"the running `ticketd run` (pid {pid}) queues {what} now, but {held}"


@tickets.command("assign")
@click.argument("ticket_id", type=ROW_ID)
@click.argument("target", metavar="AGENT_OR_GROUP")
@config_option
def tickets_assign(ticket_id: int, target: str, config: str | None) -> None:
    """Give a ticket to an agent (even an away one), or to a group by its strategy; the agent is told."""
    from ticketd.admin import assign

    app, (assignee, outbox_ids) = _admin_change(config, lambda app: assign(app, ticket_id, target))
    who = assignee or f"nobody yet: it waits in {target} for someone available"
    mail = _mail_goes(app.settings, "the mail") if outbox_ids else "no mail to send"
    click.echo(f"ticket [#{ticket_id}] assigned to {who}; {mail}")


@tickets.command("close")
@click.argument("ticket_id", type=ROW_ID)
@click.option("--reason", help="why, for the history and the customer's closing mail")
@click.option("--silent", is_flag=True, help="no closing mail (and rating request) to the customer")
@config_option
def tickets_close(ticket_id: int, reason: str | None, silent: bool, config: str | None) -> None:
    """Close a ticket as an agent's #close does, logged as the admin's; the customer gets the closing mail."""
    from ticketd.admin import close

    app, outbox_ids = _admin_change(config, lambda app: close(app, ticket_id, reason, tell_customer=not silent))
    mail = _mail_goes(app.settings, "the mail") if outbox_ids else "no mail to send"
    click.echo(f"ticket [#{ticket_id}] closed; {mail}")


@tickets.command("follow")
@click.argument("ticket_id", type=ROW_ID)
@click.argument("address")
@config_option
def tickets_follow(ticket_id: int, address: str, config: str | None) -> None:
    """Make someone a follower of a ticket, as an agent's #follow does: they get its public replies from now on."""
    from ticketd.admin import follow

    _app, added = _admin_change(config, lambda app: follow(app, ticket_id, address))
    click.echo(f"{added} follows ticket [#{ticket_id}]")


@tickets.command("unfollow")
@click.argument("ticket_id", type=ROW_ID)
@click.argument("address")
@config_option
def tickets_unfollow(ticket_id: int, address: str, config: str | None) -> None:
    """Take a follower off a ticket, as an agent's #unfollow does: they get its public replies no more."""
    from ticketd.admin import unfollow

    _app, removed = _admin_change(config, lambda app: unfollow(app, ticket_id, address))
    click.echo(f"{removed} no longer follows ticket [#{ticket_id}]")


# ---------------------------------------------------------------- agents


@main.group()
def agents() -> None:
    """The agents in rules.yaml: who is away, who holds how much; an absence set for one."""


@agents.command("list")
@config_option
@json_option
def agents_list(config: str | None, as_json: bool) -> None:
    """Every agent: groups, open tickets, away (rules.yaml's or their own #away), their desk address."""
    from ticketd.agents import agents_now
    from ticketd.clock import utcnow

    listed = agents_now(_app(config), utcnow())
    if as_json:
        _print_json(listed)
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

    app = _app(config, writes=True)
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
    click.echo(f"{agent.email} is away until {iso(until) if until else 'ticketd agents back'}")


@agents.command("back")
@click.argument("email")
@config_option
def agents_back(email: str, config: str | None) -> None:
    """End an agent's absence set by #away or `agents away` (rules.yaml's `away:` stays the file's)."""
    from ticketd.agents import set_back

    app = _app(config, writes=True)
    agent = _agent(app, email)
    set_back(app, agent.email)
    note = "; rules.yaml still marks them away" if agent.away else ""
    click.echo(f"{agent.email} takes new tickets again{note} (waiting tickets go out at the daemon's next sweep)")


# ---------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Check and try out rules.yaml."""


def _rules_path(file: str | None, config: str | None) -> Path:
    if file:
        return Path(file)
    return _settings(config).rules_file   # a broken config is an error, not a cue to check ./rules.yaml


@rules.command("check")
@click.argument("file", required=False, type=click.Path(readable=False))
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
    # Warnings are no errors (PRODUCT.md's exit 1 is for errors): the file applies, with mail waiting for nobody.
    for line in loaded.warnings:
        click.echo(line, err=True)
    warned = f" ({len(loaded.warnings)} warning(s))" if loaded.warnings else ""
    click.echo(f"{path}: OK: {summary(loaded)}{warned}")


@main.group()
def templates() -> None:
    """The mail templates and saved replies (templates_dir overrides first)."""


@templates.command("check")
@config_option
def templates_check(config: str | None) -> None:
    """Render every template and saved reply with sample values; exit 1 and name each that fails.

    Also names each template overridden in part and what its mail is then made of (templates/README.md).
    """
    from outbound.template_check import check_templates, partial_overrides

    override_dir = _settings(config).templates_dir
    errors, templates_count, canned_count = check_templates(override_dir)
    where = f"templates_dir {override_dir}" if override_dir else "the shipped templates"
    for line in partial_overrides(override_dir):
        click.echo(line)
    if errors:
        for line in errors:
            click.echo(line, err=True)
        click.echo(f"{where}: {len(errors)} error(s); mail that needs them would be quarantined, and "
                   "`ticketd run` and `ticketd worker` refuse to start", err=True)
        sys.exit(1)
    click.echo(f"{where}: OK: {templates_count} templates and {canned_count} saved replies render")


@rules.command("test")
@click.argument("file", type=click.Path(readable=False))
@click.argument("mail", type=click.Path(readable=False))
@click.option("--config", type=click.Path(readable=False),
              help="read this daemon's database (read only): the round-robin cursor, and which ticket a reply joins")
def rules_test(file: str, mail: str, config: str | None) -> None:
    """Dry run: which route and timers would apply to MAIL, and what would be sent. Writes nothing."""
    from ticketd.clock import utcnow
    from ticketd.rules_dryrun import mail_lines
    from ticketd.rules_file import RulesError, load_rules

    try:
        loaded = load_rules(file)
    except RulesError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(1)
    engine = app = settings = None
    if config or Path("ticketd.yaml").exists():
        from ticketd.app import App
        from ticketd.domain.signing import Signer
        from ticketd.signing_key import desk_keys
        from ticketd.store.assignment import has_cursor_table
        from ticketd.store.db import make_engine, sqlite_file

        settings = _settings(config)
        missing = sqlite_file(settings.database_url)
        if missing is None or missing.exists():   # opening a SQLite file that is not there would create it
            engine = make_engine(settings.database_url)
            if not has_cursor_table(engine):
                engine = None
        # Threading needs the daemon's key; a key not made yet has signed nothing to thread by.
        keys = desk_keys(settings.secret_key, settings.data_dir, engine, create=False)
        if engine is not None and keys.signing is not None:
            app = App(settings=settings, engine=engine, rules=loaded,
                      signer=Signer(keys.signing, tuple(settings.previous_secret_keys) + keys.also_verifying))
    # A mail past the MIME limits is one outcome among others: "would be quarantined: ...", exit 0.
    try:
        raw = Path(mail).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read the mail {mail}: {exc.strerror}") from None
    for line in mail_lines(loaded, raw, utcnow(), engine, app, settings):
        click.echo(line)


# ---------------------------------------------------------------- status


class _CheckCommand(click.Command):
    """A command monitoring runs as a check: a mistyped option exits UNKNOWN (3), not click's 2, which a check
    reads as CRITICAL (ticketd/health.py)."""

    def make_context(self, info_name, args, *rest, **kwargs) -> click.Context:
        as_json = "--json" in args   # before click consumes them
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except click.UsageError as exc:
            from ticketd import health

            exc.exit_code = health.UNKNOWN
            _print_verdict(health.cannot_look("usage", health.UNKNOWN, exc.format_message()), as_json)
            raise


@main.command(cls=_CheckCommand)
@config_option
@json_option
def status(config: str | None, as_json: bool) -> None:
    """Is the daemon running and mail flowing: mail waiting to be processed or sent, timers, tickets.

    Exits as a Nagios plugin: 0 healthy, 1 warning (an IMAP mailbox failing, mail quarantined or failed
    lately, mail late, no `ticketd worker`, a rules file with errors, a disk nearly full), 2 critical (the
    daemon not running, Redis or the database not answering, no database, processing stuck, nothing sent for
    an hour, jobs and no worker, no room for one more mail), 3 unknown (settings or a schema version it
    cannot read); the checks and their thresholds are in ticketd/health.py.
    It never creates or changes the database.
    """
    from ingest.imap_health import imap_status
    from ticketd import health
    from ticketd.store.errors import Unreachable, unreachable_message
    from ticketd.views import daemon_status, desk_status, disk_status, rules_status
    from workers.broker_health import queue_status

    try:
        settings = _settings(config)   # read once: its warnings (a stray TICKETD_ variable) shown once
    except click.ClickException as exc:   # settings it cannot read: it could not look
        _could_not_look(health.cannot_look("settings", health.UNKNOWN, exc.message), exc.message, as_json)
    try:
        engine = _engine(config, settings)
        desk = desk_status(engine, settings.data_dir)
        desk["imap"] = imap_status(engine, settings.imap)
        flow = health.mail_flow(engine)
    except _NoDatabase as exc:   # the desk has no database: nothing is received, processed or sent
        # The pid file needs no database: a daemon running there says --config is not its settings.
        _could_not_look(health.unreachable_database(exc.message), exc.message, as_json,
                        daemon=daemon_status(settings.data_dir))
    except click.ClickException as exc:   # a schema it cannot read (another version): it could not look
        _could_not_look(health.cannot_look("database", health.UNKNOWN, exc.message), exc.message, as_json)
    except Unreachable as exc:
        message = unreachable_message(settings.database_url, exc)
        _could_not_look(health.unreachable_database(message), message, as_json)
    desk["queue"] = queue_status(settings)
    desk["rules"] = rules_status(settings.rules_file)
    desk["disks"], desk["max_message_bytes"] = disk_status(settings), settings.smtp.max_message_bytes
    verdict = health.assess(desk, flow)
    if as_json:
        _print_json({**desk, **verdict.summary()})
    else:
        _print_status(desk, verdict)
    click.get_current_context().exit(verdict.state)


def _print_verdict(verdict, as_json: bool, daemon: dict | None = None) -> None:
    """The summary of a status that could not look, on stdout for the check to show: always one JSON object
    with --json, which monitoring parses; the daemon's state too when it could be read."""
    from ticketd.clock import iso, utcnow

    if as_json:
        _print_json({"at": iso(utcnow()), **({"daemon": daemon} if daemon else {}), **verdict.summary()})
        return
    click.echo(f"health   {verdict.line()}")
    if daemon:
        click.echo(f"daemon   {_daemon_line(daemon)}")


def _could_not_look(verdict, message: str, as_json: bool, daemon: dict | None = None) -> None:
    """The one line every command gives, exiting with the verdict's state, and the summary on stdout."""
    _print_verdict(verdict, as_json, daemon)
    error = click.ClickException(message)
    error.exit_code = verdict.state
    raise error from None


def _print_status(desk: dict, verdict) -> None:
    def oldest(seconds) -> str:
        return "" if seconds is None else f" (oldest {seconds:.0f} s)"

    inbox, outbox, timers = desk["inbox"], desk["outbox"], desk["timers"]
    click.echo(f"health   {verdict.line()}")
    click.echo(f"daemon   {_daemon_line(desk['daemon'])}")
    click.echo(f"queue    {_queue_line(desk['queue'])}")
    if desk["queue"].get("workers") is not None:
        click.echo(f"workers  {_workers_line(desk['queue'])}")
    for box in desk["imap"]:
        click.echo(f"imap     {_imap_line(box)}")
    rules = desk["rules"]
    click.echo(f"rules    {rules['file']}: " + ("valid" if rules["valid"] else
                                                f"{len(rules['errors'])} error(s), not in force"))
    click.echo(f"inbox    waiting {inbox['waiting']}{oldest(inbox['oldest_waiting_seconds'])}, processing "
               f"{inbox['processing']}, quarantined {inbox['quarantined']}, done {inbox['done']}")
    click.echo(f"outbox   pending {outbox['pending']}, sending {outbox['sending']}"
               f"{oldest(outbox['oldest_unsent_seconds'])}, failed {outbox['failed']}, sent {outbox['sent']}")
    click.echo("tickets  " + ", ".join(f"{name} {n}" for name, n in desk["tickets"].items()))
    click.echo(f"timers   armed {timers['armed']}, overdue {timers['overdue']}, "
               f"next due {timers['next_due_at'] or '-'}")
    for disk in desk["disks"]:
        click.echo(f"disk     {_disk_line(disk)}")


def _disk_line(disk: dict) -> str:
    from ticketd.health import file_size

    where = f"{disk['path']} ({', '.join(disk['holds'])})"
    if "error" in disk:
        return f"{where}: cannot look ({disk['error']})"
    room = f"{file_size(disk['free_bytes'])} free of {file_size(disk['total_bytes'])}"
    return f"{where}: {room}{', READ-ONLY' if disk['read_only'] else ''}"


def _queue_line(queue: dict) -> str:
    if queue["backend"] != "redis":
        return "in-process (the workers run inside `ticketd run`)"
    where = f"redis {queue['url']} (namespace {queue['namespace']})"
    if not queue["reachable"]:
        return f"{where}: UNREACHABLE ({queue['error']}); mail waits in the outbox until it answers"
    waiting = queue["waiting"]
    jobs = f"{waiting} job{'' if waiting == 1 else 's'} waiting"
    if queue.get("write_error"):
        return f"{where}: answers but REFUSES WRITES ({queue['write_error']}), {jobs}; mail waits in the outbox"
    return f"{where}: answers, {jobs}"


def _workers_line(queue: dict) -> str:
    from ticketd.health import duration
    from workers.broker_health import WORKER_GONE_SECONDS

    if queue["workers"]:
        alive = f"{queue['workers']} alive (`ticketd worker` processes beating within {WORKER_GONE_SECONDS:.0f} s)"
        troubled = queue.get("workers_without_database") or []
        return alive + (f", {len(troubled)} of them without the database" if troubled else "")
    last = queue.get("last_beat_seconds_ago")
    return "none running" if last is None else f"none seen for {duration(last)}"


def _imap_line(box: dict) -> str:
    from ticketd.health import oversized

    too_big = f"; {oversized(box)} LEFT ON THE SERVER" if box.get("oversized") else ""
    if box["state"] == "failing":
        polled = f"last poll {box['last_ok_at']}" if box["last_ok_at"] else "never polled"
        return (f"{box['mailbox']}: FAILING since {box['failing_since']}, {box['failures']} failed "
                f"tr{'y' if box['failures'] == 1 else 'ies'}, {polled}: {box['error']}{too_big}")
    if box["state"] == "ok":
        return f"{box['mailbox']}: polling, last poll {box['last_ok_at']}{too_big}"
    return f"{box['mailbox']}: {box['state']}"


def _daemon_line(daemon: dict) -> str:
    if daemon["running"] is None:
        return f"unknown ({daemon['error']})"
    if not daemon["running"]:
        return "not running"
    since = f", since {daemon['started_at']}" if daemon.get("started_at") else ""
    return f"running (pid {daemon['pid'] if daemon['pid'] is not None else 'not written yet'}{since})"


# ---------------------------------------------------------------- outbox

OUTBOX_STATES = ("pending", "sending", "failed", "sent", "dismissed")
UNSENT = ("pending", "sending", "failed")
RETRY_ACTOR = "admin:cli"


@main.group()
def outbox() -> None:
    """Mail to send: what waits or failed, and sending failed mail again."""


@outbox.command("list")
@config_option
@click.option("--state", "states", multiple=True, type=click.Choice(OUTBOX_STATES),
              help="only rows in this state (repeatable; default: all but sent; failed: not dismissed; "
                   "dismissed: failed rows dismissed by `outbox dismiss`)")
@click.option("--all", "every", is_flag=True, help="every row, sent and dismissed ones too")
@json_option
def outbox_list(config: str | None, states: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Mail to send, newest first (by default everything not sent yet and not dismissed)."""
    from ticketd.views import list_outbox

    if every and states:
        raise click.UsageError("--all lists every state: drop --state or --all")
    rows = list_outbox(_engine(config), OUTBOX_STATES if every else states or UNSENT)
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        ticket = f"[#{r['ticket_id']}]" if r["ticket_id"] else "-"
        state = "dismissed" if r["dismissed_at"] else r["state"]
        click.echo(f"{r['id']:>6}  {state:<7} {r['attempts']:>3}x {ticket:>8}  {r['created_at']}  "
                   f"{r['recipient']:<28} {r['template']:<28} {_outbox_detail(r)}")


def _outbox_detail(row: dict) -> str:
    """When it goes next or went, the last error's first line, and who dismissed it."""
    when = f"sent {row['sent_at']}" if row["state"] == "sent" else (
        "" if row["state"] == "failed" else f"next {row['next_attempt_at']}")
    error = (row["last_error"] or "").strip().splitlines()
    return "  ".join(part for part in (when, error[0] if error else "", _dismissed_line(row)) if part)


def _dismissed_line(row: dict) -> str:
    if not row["dismissed_at"]:
        return ""
    why = f": {row['dismiss_reason']}" if row["dismiss_reason"] else ""
    return f"(dismissed by {row['dismissed_by']} at {row['dismissed_at']}{why})"


def _who() -> str:
    """Who dismisses: the login name running the command (ticketd has no admin accounts of its own)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):   # no login name for this uid (a container)
        return f"uid {os.getuid()}"


def _ids_or_all(ids: tuple[int, ...], every: bool) -> list[int] | None:
    """The IDs given, or None for --all; one of the two, not both."""
    if bool(ids) == every:
        raise click.UsageError("give one or more IDs, or --all")
    return None if every else list(ids)


@outbox.command("dismiss")
@click.argument("outbox_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every failed row not dismissed yet")
@click.option("--reason", help="why, kept with the row (and in its ticket's history)")
@config_option
def outbox_dismiss(outbox_ids: tuple[int, ...], every: bool, reason: str | None, config: str | None) -> None:
    """Mark failed mail as looked at: kept as it is (`outbox list --state dismissed`), left out of
    `retry --all-failed` (its ID still sends it), and no longer a warning of `ticketd status`."""
    from ticketd.clock import iso, utcnow
    from ticketd.store.db import reading
    from ticketd.store.outbox import dismiss_failed, dismissal_of
    from ticketd.store.tickets import add_event

    wanted = _ids_or_all(outbox_ids, every)
    settings = _settings(config)
    configure_logging(settings.log_level)   # the INFO line of each dismissal
    engine = _engine(config, settings, writes=True)
    who = _who()
    with engine.begin() as conn:
        now = utcnow()
        dismissed = dismiss_failed(conn, wanted, who, reason, now)
        for r in dismissed:
            if r["ticket_id"] is not None:   # the ticket's history says what became of its mail
                add_event(conn, r["ticket_id"], now, RETRY_ACTOR, "delivery_dismissed", to_value=r["recipient"],
                          reason=f"{r['template']}: failed outbox {r['id']} dismissed by {who} with `ticketd outbox "
                                 "dismiss`" + (f": {reason}" if reason else ""))
    for r in dismissed:
        logging.getLogger("ticketd.admin").info("outbox %s dismissed by %s", r["id"], who)
        ticket = f" (ticket [#{r['ticket_id']}])" if r["ticket_id"] else ""
        click.echo(f"outbox {r['id']}: {r['template']} to {r['recipient']}{ticket} dismissed: kept failed, "
                   "listed by `ticketd outbox list --state dismissed`")
    problems = []
    with reading(engine) as conn:
        for outbox_id in sorted(set(wanted or ()) - {r["id"] for r in dismissed}):
            row = dismissal_of(conn, outbox_id)
            if row is not None and row["state"] == "failed":
                click.echo(f"outbox {outbox_id} was already dismissed by {row['dismissed_by']} at "
                           f"{iso(row['dismissed_at'])}")
            else:
                problems.append(f"no outbox row {outbox_id}" if row is None else
                                f"outbox {outbox_id} is {row['state']}, not failed: only failed mail is dismissed")
    if every and not dismissed:
        click.echo("nothing to dismiss: no failed mail waits to be looked at")
    if problems:
        raise click.ClickException("; ".join(problems))


@outbox.command("retry")
@click.argument("outbox_id", type=ROW_ID, required=False)
@click.option("--all-failed", is_flag=True, help="every failed row instead of one")
@config_option
def outbox_retry(outbox_id: int | None, all_failed: bool, config: str | None) -> None:
    """Send failed mail again: queued anew (a new outbox ID, after the mail already waiting to the same person
    about the same ticket), attempts reset, due now; the running daemon sends it at once."""
    if (outbox_id is None) != all_failed:
        raise click.UsageError("give one outbox ID or --all-failed")
    settings = _settings(config)
    engine = _engine(config, settings, writes=True)
    requeued, reports_left = _requeue_failed(engine, None if all_failed else [outbox_id])
    if outbox_id is not None and not requeued:
        from ticketd.store.db import reading
        from ticketd.store.outbox import state_of

        with reading(engine) as conn:
            state = state_of(conn, outbox_id)
        raise click.ClickException(f"no outbox row {outbox_id} (a row sent again has a new ID: "
                                   "`ticketd outbox list`)" if state is None else
                                   f"outbox {outbox_id} is {state}, not failed: nothing to retry")
    for r in requeued:
        ticket = f" (ticket [#{r['ticket_id']}])" if r["ticket_id"] else ""
        click.echo(f"outbox {r['retried_id']}: {r['template']} to {r['recipient']}{ticket} is pending again as "
                   f"outbox {r['id']}, Message-ID <{r['message_id']}>")
    if reports_left:
        click.echo(f"{reports_left} failed {DELIVERY_FAILED} mail(s) left failed: they report the failures "
                   "just retried, and a mail that fails again is reported anew (retry one by its ID to send it, "
                   "or `ticketd outbox dismiss` it)")
    if not requeued:
        click.echo("no failed mail")
        return
    click.echo(_mail_goes(settings, "it" if len(requeued) == 1 else "them"))


def _wake_daemon(data_dir: Path) -> int | None:
    """Ask the daemon of this data_dir to sweep now (SIGUSR1); its pid, or None if none was reached."""
    import signal

    from ticketd.pidlock import pid_path, probe

    holder = probe(pid_path(data_dir))
    if not holder.running or holder.pid is None:
        return None
    try:
        os.kill(holder.pid, signal.SIGUSR1)
    except OSError:   # another user's daemon: its sweep sends the mail in a few seconds
        return None
    return holder.pid


def _requeue_failed(engine, outbox_ids: list[int] | None) -> tuple[list[dict], int]:
    """Failed rows queued anew, each retry an event on its ticket; (rows, reports left).

    Every failed row but the agents' failure reports, whose news the retry
    makes stale ("the customer has not seen it" as the mail goes out again);
    one asked for by its ID is sent. One transaction per ticket, holding
    its lock as every writer of its mail does (ticketd/store/outbox.py): the
    retried mail goes after what its line already holds, in the order the
    failed rows were queued.
    """
    from itertools import groupby

    from ticketd.clock import utcnow
    from ticketd.store.db import reading
    from ticketd.store.outbox import failed_count, failed_to_retry, requeue_failed
    from ticketd.store.tickets import add_event, lock_ticket

    except_templates = (DELIVERY_FAILED,) if outbox_ids is None else ()
    with reading(engine) as conn:
        failed = failed_to_retry(conn, outbox_ids, except_templates)
    requeued = []
    for ticket_id, rows in groupby(sorted(failed, key=lambda r: (r[1] is None, r[1] or 0, r[0])), lambda r: r[1]):
        with engine.begin() as conn:
            ticket = lock_ticket(conn, ticket_id) if ticket_id is not None else None
            now = utcnow()
            for outbox_id, _ in rows:
                r = requeue_failed(conn, outbox_id, now)   # None: retried meanwhile by another
                if r is None:
                    continue
                requeued.append(r)
                if ticket is not None:
                    add_event(conn, ticket_id, now, RETRY_ACTOR, "delivery_retried", to_value=r["recipient"],
                              reason=f"{r['template']}: outbox {r['retried_id']} sent again as outbox {r['id']} "
                                     "by `ticketd outbox retry`")
    if not except_templates:
        return sorted(requeued, key=lambda r: r["retried_id"]), 0
    with reading(engine) as conn:
        return sorted(requeued, key=lambda r: r["retried_id"]), failed_count(conn, except_templates)


# ---------------------------------------------------------------- quarantine


@main.group()
def quarantine() -> None:
    """Mail that could not be processed, kept whole with the reason."""


@quarantine.command("list")
@click.option("--state", type=click.Choice(["quarantined", "dismissed"]), default="quarantined", show_default=True,
              help="quarantined: not dismissed yet; dismissed: dismissed by `quarantine dismiss`")
@click.option("--all", "every", is_flag=True, help="both")
@config_option
@json_option
def quarantine_list(state: str, every: bool, config: str | None, as_json: bool) -> None:
    """Quarantined mail, oldest first (by default what nobody has dismissed)."""
    from ticketd.views import list_quarantine

    rows = list_quarantine(_engine(config), None if every else state == "dismissed")
    if as_json:
        _print_json(rows)
        return
    for q in rows:
        first_line = (q["reason"] or "").splitlines()[0] if q["reason"] else ""
        line = f"{q['id']:>6}  {q['received_at']}  {q['size']:>9}  {q['message_id'] or '-'}  {first_line}"
        click.echo("  ".join(part for part in (line, _dismissed_line(q)) if part))


@quarantine.command("dismiss")
@click.argument("raw_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every quarantined mail not dismissed yet")
@click.option("--reason", help="why, kept with the mail")
@config_option
def quarantine_dismiss(raw_ids: tuple[int, ...], every: bool, reason: str | None, config: str | None) -> None:
    """Mark quarantined mail as looked at: kept whole (`quarantine list --state dismissed`), `retry` still
    re-drives it, and `ticketd status` no longer warns of it."""
    from ticketd.clock import iso, utcnow
    from ticketd.store.db import reading
    from ticketd.store.inbox import dismiss_quarantined, quarantine_of

    wanted = _ids_or_all(raw_ids, every)
    settings = _settings(config)
    configure_logging(settings.log_level)   # the INFO line of each dismissal
    engine = _engine(config, settings, writes=True)
    who = _who()
    with engine.begin() as conn:
        dismissed = dismiss_quarantined(conn, wanted, who, reason, utcnow())
    for raw_id in dismissed:
        logging.getLogger("ticketd.admin").info("quarantined mail %s dismissed by %s", raw_id, who)
        click.echo(f"mail {raw_id} dismissed: kept in quarantine, listed by `ticketd quarantine list --state "
                   "dismissed`")
    problems = []
    with reading(engine) as conn:
        for raw_id in sorted(set(wanted or ()) - set(dismissed)):
            row = quarantine_of(conn, raw_id)
            if row is not None and row["state"] == "quarantined":
                click.echo(f"mail {raw_id} was already dismissed by {row['dismissed_by']} at "
                           f"{iso(row['dismissed_at'])}")
            else:
                problems.append(f"mail {raw_id} is not in quarantine")
    if every and not dismissed:
        click.echo("nothing to dismiss: no quarantined mail waits to be looked at")
    if problems:
        raise click.ClickException("; ".join(problems))


@quarantine.command("retry")
@click.argument("raw_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every quarantined mail not dismissed yet")
@config_option
def quarantine_retry(raw_ids: tuple[int, ...], every: bool, config: str | None) -> None:
    """Re-drive quarantined mail through processing now, oldest first (a dismissed one by its ID: failing
    again, it is news); exit 1 if any is not in quarantine or fails again."""
    from ticketd.pipeline import ProcessingDeferred, process_raw
    from ticketd.store.inbox import requeue
    from ticketd.views import list_quarantine

    wanted = _ids_or_all(raw_ids, every)
    app = _app(config, writes=True)
    if wanted is None:
        wanted = [q["id"] for q in list_quarantine(app.engine)]
        if not wanted:
            click.echo("nothing to retry: no quarantined mail waits to be looked at")
            return
    # In arrival order, whatever order they were named in: an original opens its ticket before its reply.
    ordered = sorted(set(wanted))
    failed = 0
    for n, raw_id in enumerate(ordered):
        if not requeue(app.engine, raw_id):
            click.echo(f"mail {raw_id} is not in quarantine", err=True)
            failed += 1
            continue
        try:
            outcome = process_raw(app, raw_id)
        except ProcessingDeferred as exc:
            rest = ordered[n + 1:]
            click.echo(f"mail {raw_id} is out of quarantine and waits: {exc}; the daemon takes it once that is "
                       "mended" + (f"; not retried, still in quarantine: {' '.join(map(str, rest))}" if rest else ""),
                       err=True)
            sys.exit(1)
        if outcome is None:
            click.echo(f"mail {raw_id} was taken by the running daemon")
        elif outcome.quarantined:
            click.echo(f"mail {raw_id} failed again and stays in quarantine:\n{outcome.quarantined}", err=True)
            failed += 1
        elif outcome.matched_by == "copy":
            click.echo(f"mail {raw_id} processed: ticket {outcome.ticket_id} has it already (another delivery of "
                       f"it, its bytes changed on the way); not added twice")
        else:
            click.echo(f"mail {raw_id} processed: ticket {outcome.ticket_id} ({outcome.matched_by})")
    if failed:
        sys.exit(1)


# ---------------------------------------------------------------- erasure (GDPR Art. 17)

yes_option = click.option("--yes", is_flag=True, help="erase without asking")


def _confirm_erasure(what: str, preview, as_json: bool) -> None:
    """Show what would be erased and ask; without a terminal to ask on, refuse (exit 1)."""
    from ticketd.erase import summary

    _confirm(f"would erase {what}: {summary(preview)}", f"Erase {what}? This cannot be undone",
             f"not erased: no terminal to confirm on; run again with --yes to erase {what}", as_json)


def _erasure_setup(config: str | None):
    settings = _settings(config)
    configure_logging(settings.log_level)   # the INFO line of each erasure is its audit record
    return settings, _engine(config, settings, writes=True)


@tickets.command("delete")
@click.argument("ticket_id", type=ROW_ID)
@yes_option
@config_option
@json_option
def tickets_delete(ticket_id: int, yes: bool, config: str | None, as_json: bool) -> None:
    """Erase one ticket and everything stored for it; its raw mail stays only as a tombstone."""
    from ticketd.erase import erase_ticket, summary

    settings, engine = _erasure_setup(config)
    why = f"`ticketd tickets delete {ticket_id}`"
    if not yes:
        preview = erase_ticket(engine, settings.attachments_dir, ticket_id, why, dry_run=True)
        if preview is None:
            raise click.ClickException(f"no ticket {ticket_id}")
        _confirm_erasure(f"ticket [#{ticket_id}]", preview, as_json)
    erased = erase_ticket(engine, settings.attachments_dir, ticket_id, why)
    if erased is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        _print_json({"ticket_id": ticket_id, "erased": erased.counts()})
    else:
        click.echo(f"ticket [#{ticket_id}] erased: {summary(erased)}")


@main.command()
@click.argument("address")
@yes_option
@config_option
@json_option
def forget(address: str, yes: bool, config: str | None, as_json: bool) -> None:
    """Erase one person: the tickets they opened, their words and address on other tickets, their mail."""
    from ticketd.erase import forget as forget_person
    from ticketd.erase import summary
    from ticketd.ticket_changes import is_ours

    app = _app(config, writes=True)   # the rules: an agent is not forgotten behind rules.yaml's back
    address = address.strip().lower()
    if "@" not in address:
        raise click.UsageError(f"{address!r} is not an email address")
    if app.rules.agent(address) is not None:
        raise click.ClickException(f"{address} is an agent in {app.settings.rules_file}: remove them "
                                   "from it first (and let the daemon reload it), then forget them")
    if is_ours(app, address):
        raise click.ClickException(f"{address} is one of ticketd's own addresses")
    why = "`ticketd forget`"
    if not yes:
        preview = forget_person(app.engine, app.settings.attachments_dir, address, why, dry_run=True)
        _confirm_erasure(address, preview, as_json)
    erased = forget_person(app.engine, app.settings.attachments_dir, address, why)
    if as_json:
        _print_json({"address": address, "tickets_erased": erased.tickets, "erased": erased.counts()})
    else:
        tickets_erased = ", ".join(f"[#{t}]" for t in erased.tickets) or "none"
        click.echo(f"{address} forgotten: tickets erased {tickets_erased}; {summary(erased)}")


# ---------------------------------------------------------------- report


@main.command()
# A longer window than a century reaches before any ticket: it is all of them.
@click.option("--days", type=click.IntRange(min=1, max=36500, clamp=True), default=30, show_default=True,
              help="the window: the last N days")
@config_option
@json_option
def report(days: int, config: str | None, as_json: bool) -> None:
    """The desk's figures: tickets in and out, first reply and resolution times, breaches, ratings, per agent."""
    from ticketd.domain.report import human_duration
    from ticketd.report import desk_report
    from ticketd.rules_file import RulesError, load_rules

    settings = _settings(config)
    try:   # the agents with nothing in the window are listed too; a broken file only leaves them out
        agents = [a.email for a in load_rules(settings.rules_file).agents] if settings.rules_file.exists() else []
    except RulesError:
        agents = []
    figures = desk_report(_engine(config, settings), days, agents)
    if as_json:
        _print_json(figures)
        return

    def times(d: dict) -> str:
        return f"median {human_duration(d['median_seconds'])}, 90% within {human_duration(d['p90_seconds'])}"

    def stars(r: dict) -> str:
        return "-" if not r["count"] else f"{r['usefulness']:.1f}/{r['speed']:.1f}/{r['politeness']:.1f}"

    t, first, done, rated, reacted = (figures[k] for k in ("tickets", "first_response", "resolution", "ratings",
                                                           "reactions"))
    click.echo(f"the last {days} days, {figures['since']} to {figures['until']}")
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


if __name__ == "__main__":
    main()
