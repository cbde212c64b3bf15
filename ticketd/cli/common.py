"""What the `ticketd` commands share: the options, reading the settings, opening the app or the database."""

from __future__ import annotations

import codecs
import json
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from ticketd.domain.ids import MAX_ID
from ticketd.logs import configure_logging
from ticketd.settings import environment_sources, load_settings, moved_default_database

CONFIG_HELP = "ticketd.yaml (default: $TICKETD_CONFIG, else ./ticketd.yaml if present)"

# The options most commands share.
# Files are read by the commands themselves: one that cannot be (missing, a directory, unreadable) is
# an error saying why, exit 1 as PRODUCT.md has it, not click's usage error (exit 2).
config_option = click.option("--config", type=click.Path(readable=False), help=CONFIG_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


class _RowId(click.IntRange):
    """An outbox or quarantine row's id, as their `list` prints it: one no row can have is a usage error, not a
    query PostgreSQL refuses, and words are told so as a ticket number is (not click's "integer range")."""

    name = "ID"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not (value.strip().isascii() and value.strip().isdigit()):
            group = ctx.parent.info_name if ctx is not None and ctx.parent is not None else None
            lists = f"`ticketd {group} list`" if group else "the list"
            self.fail(f"{value!r} is not an ID; write the number {lists} shows, e.g. 12", param, ctx)
        return super().convert(value, param, ctx)


ROW_ID = _RowId(min=1, max=MAX_ID)


class _Count(click.IntRange):
    """A count of days, tickets or threads: "'abc' is not a whole number", not click's "integer range"."""

    name = "N"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not (value.strip().isascii() and value.strip().lstrip("-").isdigit()):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        return super().convert(value, param, ctx)


COUNT = _Count(min=1)


class _TicketNumber(click.IntRange):
    """A ticket's number, also as its tag is written everywhere else (`[#1042]`, `#1042`)."""

    name = "ticket"

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            number = value.strip().removeprefix("[").removesuffix("]").removeprefix("#")
            if not (number.isascii() and number.isdigit()):
                self.fail(f"{value!r} is not a ticket number; write e.g. 1042 or [#1042]", param, ctx)
            value = number
        return super().convert(value, param, ctx)


TICKET_ID = _TicketNumber(min=1, max=MAX_ID)
DATABASE_URL_KEY = "ticketd.database_url"


def settings_file(config: str | None) -> str | None:
    """The settings file a command reads: --config, else $TICKETD_CONFIG, else ./ticketd.yaml if present."""
    if config:
        return config
    if os.environ.get("TICKETD_CONFIG"):
        return os.environ["TICKETD_CONFIG"]
    return "ticketd.yaml" if Path("ticketd.yaml").exists() else None


def read_settings(config: str | None):
    """The settings, or one error naming each bad key with the file and line it came from."""
    # The file is named here, not left to load_settings: the errors point into it whichever way it was given.
    config = settings_file(config)
    try:
        settings = load_settings(config)
    except ValidationError as exc:
        sources = environment_sources(dict(os.environ))
        lines = _key_lines(config)
        problems, from_environment = [], True
        for error in sorted(exc.errors(), key=lambda e: _line_of(lines, e["loc"]) or 1 << 30):
            where = ".".join(str(p) for p in error["loc"])
            origin = next((name for key, name in sources.items() if where == key or where.startswith(key + ".")),
                          None)
            # The line in the file, as rules.yaml's errors give it: the nearest key written there.
            line = _line_of(lines, error["loc"])
            at = f"{config}:{line}: " if line is not None and origin is None else ""
            message = _number_wanted(where, error) or error["msg"].removeprefix("Value error, ")
            problems.append(f"  {at}{where}: {message}" + (f" (from {origin})" if origin else ""))
            from_environment = from_environment and origin is not None
        what = "the settings from TICKETD_ variables are" if from_environment else f"{config or 'settings'} is"
        raise click.ClickException(f"{what} not valid:\n" + "\n".join(problems)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read settings {exc.filename or config}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.ClickException(f"cannot read settings: {exc}") from None
    if (ctx := click.get_current_context(silent=True)) is not None:
        ctx.meta[DATABASE_URL_KEY] = settings.database_url   # for the one-line error when it cannot be reached
    return settings


def _line_of(lines: dict[tuple, int], loc) -> int | None:
    """The line of a setting's error, as rules.yaml's errors give it: the nearest key written in the file."""
    loc = tuple(loc)
    return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)


def _number_wanted(where: str, error: dict) -> str | None:
    """What was written where a number goes, and the number to write (`sweep_seconds: 5s`, from rules.yaml's
    durations: seconds here are a plain number)."""
    if error["type"] not in ("int_parsing", "float_parsing", "int_type", "float_type") \
            or not isinstance(error["input"], str):
        return None
    unit = where.rsplit("_", 1)[-1] if where.endswith(("_seconds", "_days", "_bytes")) else ""
    example = {"seconds": " of seconds, e.g. 30 (rules.yaml's 5m and 4h are not read here)",
               "days": " of days, e.g. 30", "bytes": " of bytes, e.g. 26214400"}.get(unit, ", e.g. 10")
    if error["input"].strip().isdecimal():   # '30': quoted in the file, which makes it text
        return f"got {error['input']!r}, text in quotes; write the number without them"
    whole = "a whole number" if error["type"].startswith("int") else "a number"
    return f"got {error['input']!r}; write {whole}{example}"


def _key_lines(config: str | None) -> dict[tuple, int]:
    """The line of each key of the settings file (ticketd.settings.key_lines); empty without one."""
    from ticketd.settings import key_lines

    try:
        return key_lines(Path(config).read_text(encoding="utf-8")) if config else {}
    except (OSError, UnicodeDecodeError):
        return {}


# Why a command other than the daemon stops at a missing or broken rules.yaml, and what it leaves running.
_ACTS_BY_RULES = "This command acts by the rules, so it waits for"
_DAEMON_GOES_ON = "a running daemon keeps the rules it loaded before"


def open_app(config: str | None, *, starts_daemon: bool = False, writes: bool = False):
    """The App for a command; `starts_daemon`: a daemon or worker, which refuses to start without rules.yaml
    or with a template override that fails `ticketd templates check`, and alone creates the database.

    A wrong `rules_file` path would otherwise start a desk with no agents,
    routes or timers, whose tickets wait for nobody, said once in the log.
    Any other command needs the daemon's database as `_engine` does
    (`writes`: a command that changes it, which may upgrade it), and the
    rules file: it acts by the rules (who is an agent), which a file
    missing or broken would leave empty or half-read.
    """
    from ticketd.app import build_app
    from ticketd.rules_file import RulesError
    from ticketd.signing_key import KeyFileError
    from ticketd.store.migrations import SchemaVersionError

    settings = read_settings(config)
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
        open_engine(config, settings, writes=writes).dispose()
        if not settings.rules_file.is_file():
            # Without the file there are no agents: `forget` would erase one, `tickets follow` make one a
            # follower. Refused as a broken file is; the daemon alone goes on with the rules it loaded.
            raise click.ClickException(
                f"no rules file at {settings.rules_file}: without it there are no agents, groups or routes.\n"
                f"{_ACTS_BY_RULES} the file (docs/rules.md), or for rules_file (TICKETD_RULES_FILE) to point at "
                f"it; {_DAEMON_GOES_ON}")
    try:
        # rules_required: a file gone since the check above is an error, not an empty set of rules.
        app = build_app(settings, create_schema=starts_daemon, rules_required=True)
    except OSError as exc:   # data_dir, or a SQLite database's directory, that cannot be made
        raise click.ClickException(
            f"cannot make or open {exc.filename or 'a directory'}: {exc.strerror}; data_dir and database_url in "
            f"{config or 'the settings'} name where ticketd keeps its files") from None
    except RulesError as exc:
        # A command that acts by the rules (assigning, marking an agent away, closing) will not guess at a
        # half-edited file; a running daemon goes on with the rules it loaded before.
        after = ("" if starts_daemon else f"\n{_ACTS_BY_RULES} a valid file (`ticketd rules check` lists what "
                 f"to mend); {_DAEMON_GOES_ON}")
        raise click.ClickException(f"{settings.rules_file} is not valid:\n" + "\n".join(exc.errors) + after) \
            from None
    except (SchemaVersionError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from None
    if not starts_daemon:
        _refuse_rules_the_daemon_refused(app, writes=writes)
    return app


def _refuse_rules_the_daemon_refused(app, *, writes: bool) -> None:
    """A valid rules.yaml the running daemon refused (one without agents, where its own have some) is not what
    the desk follows: a command that changes the desk by it refuses, one that only reads says so on stderr.

    Without this, `forget` would erase an agent the daemon still assigns
    tickets to, and `tickets assign` refuse them as no agent. Only the
    daemon's note that it refused this very file counts (ticketd/rules_in_force.py):
    no daemon running, or a file saved since that it has not looked at yet, is
    acted on as it stands.
    """
    from ticketd.rules_in_force import refused_by_daemon

    refused = refused_by_daemon(app.settings.data_dir, app.rules.digest)
    if refused is None:
        return
    why = f" ({refused.why})" if refused.why else ""
    said = (f"{app.settings.rules_file} as saved is not in force: the running daemon refused it{why} and keeps "
            "the rules it loaded before")
    if not writes:
        click.echo(f"warning: {said}; this lists the file as saved", err=True)
        return
    app.engine.dispose()
    raise click.ClickException(f"{said}. This command acts by the rules the daemon follows: fix the file, or "
                               "restart the daemon with it (`ticketd status` tells when it is in force)")


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


class NoDatabase(click.ClickException):
    """No ticketd database where the settings point (status: CRITICAL, the desk has none)."""


def open_engine(config: str | None, settings=None, *, writes: bool = False, statement_timeout: float | None = None):
    """The daemon's database, for a command other than `run` and `worker`: a broken rules.yaml must not hide
    the tickets.

    A command that only reads waits at most locks.READ_PATIENCE_SECONDS for
    a lock another session holds (then `locks.locked_message` says who),
    and each statement at most `statement_timeout` seconds on PostgreSQL;
    one that `writes` waits as the daemon's writers do, its turn.

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
    from ticketd.store.locks import READ_PATIENCE_SECONDS
    from ticketd.store.migrations import LATEST, SchemaVersionError, database_version, upgrade

    settings = settings or read_settings(config)
    url = settings.database_url
    where = "is --config (or TICKETD_CONFIG) the daemon's? `ticketd run` creates"
    missing = sqlite_file(url)
    if missing is not None and not missing.exists():
        raise NoDatabase(f"no database at {missing}: {where} it when it starts")
    if missing is not None and missing.stat().st_size == 0:
        # SQLite takes an empty file for a new database, and opening it would make it one (a WAL header,
        # writer lock files beside it): it is left as it was found.
        raise NoDatabase(f"the database {missing} holds no ticketd tables: {where} them when it starts")
    engine = make_engine(url, patience=None if writes else READ_PATIENCE_SECONDS,
                         statement_timeout=statement_timeout)
    try:
        with reading(engine) as conn:
            version = database_version(conn)
            if version is not None and version > LATEST:
                upgrade(conn, version)   # refuses, naming both versions, and changes nothing
        if version is None:
            shown = missing or shown_url(url)
            raise NoDatabase(f"the database {shown} holds no ticketd tables: {where} them when it starts")
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



def open_for_change(config: str | None):
    """(settings, database) for a command that changes the desk by hand: its INFO lines (a merge, an
    erasure, a dismissal) are logged, the audit record of what an admin did."""
    settings = read_settings(config)
    configure_logging(settings.log_level)
    return settings, open_engine(config, settings, writes=True)


def print_json(value) -> None:
    # Programs read it (`| jq`; RFC 8259 exchanges JSON as UTF-8): a terminal of another encoding (latin-1)
    # cannot carry every subject, so there characters beyond ASCII are \u escapes, the same JSON in any encoding.
    click.echo(json.dumps(value, indent=2, ensure_ascii=not _writes_utf8(sys.stdout)))


def tolerate_the_terminal() -> None:
    """On a terminal whose encoding cannot carry every character (latin-1), lines show what it can, "?" for
    the rest: a customer's subject in Chinese must not fail `tickets list` half-way with a traceback."""
    if not _writes_utf8(sys.stdout) and callable(getattr(sys.stdout, "reconfigure", None)):
        sys.stdout.reconfigure(errors="replace")


def _writes_utf8(stream) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def confirm(preview: str, question: str, refusal: str, as_json: bool) -> None:
    """Show what would happen and ask; without a terminal to ask on, refuse (exit 1) saying `refusal`."""
    click.echo(preview, err=as_json)   # stdout stays for the JSON
    if not sys.stdin.isatty():
        raise click.ClickException(refusal)
    click.confirm(question, abort=True, err=as_json)


def admin_change(config: str | None, change):
    """Run one admin change on the app; AdminRefused becomes the command's error."""
    from ticketd.admin import AdminRefused

    app = open_app(config, writes=True)
    try:
        return app, change(app)
    except AdminRefused as exc:
        raise click.ClickException(str(exc)) from None


def mail_goes(settings, what: str) -> str:
    """Wake the daemon for mail just queued; when `what` (the mail, it, them) goes, for the admin."""
    pid = wake_daemon(settings.data_dir)
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


def dismissed_line(row: dict) -> str:
    if not row["dismissed_at"]:
        return ""
    why = f": {row['dismiss_reason']}" if row["dismiss_reason"] else ""
    return f"(dismissed by {row['dismissed_by']} at {row['dismissed_at']}{why})"


def who_runs() -> str:
    """Who dismisses: the login name running the command (ticketd has no admin accounts of its own)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):   # no login name for this uid (a container)
        return f"uid {os.getuid()}"


def ids_or_all(ids: tuple[int, ...], every: bool) -> list[int] | None:
    """The IDs given, or None for --all; one of the two, not both."""
    if ids and every:
        raise click.UsageError("give IDs or --all, not both")
    if not ids and not every:
        raise click.UsageError("give one or more IDs, or --all")
    return None if every else list(ids)



def wake_daemon(data_dir: Path) -> int | None:
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
