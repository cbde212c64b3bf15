"""`ticketd status`: the desk's health for people and for monitoring (exit codes as a Nagios plugin)."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from ticketd.cli.common import NoDatabase, config_option, json_option, open_engine, print_json, read_settings


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


@click.command(cls=_CheckCommand)
@config_option
@json_option
def status(config: str | None, as_json: bool) -> None:
    """Is the daemon running and mail flowing: mail waiting to be processed or sent, timers, tickets.

    Exits as a Nagios plugin: 0 healthy, 1 warning (an IMAP mailbox failing, mail quarantined or failed
    lately, mail late, no `ticketd worker`, a rules file with errors, a disk nearly full, open tickets in no
    group that nobody will take, none of the newest mails vouched for by the MTA agent_auth or customer_auth
    trusts), 2 critical (the daemon not running, Redis or the database not answering, no
    database, processing stuck, nothing sent for an hour, jobs and no worker, no room for one more mail),
    3 unknown (settings or a schema version it cannot read); the checks and their thresholds are in
    ticketd/health.py.
    It never creates or changes the database.
    """
    from ingest.imap_health import imap_status
    from ticketd import health
    from ticketd.mail_auth_status import mail_auth_status
    from ticketd.store.errors import Unreachable, database_problem
    from ticketd.store.locks import STATUS_STATEMENT_SECONDS
    from ticketd.views import daemon_status, desk_status, disk_status, rules_status
    from workers.broker_health import queue_status

    try:
        settings = read_settings(config)   # read once: its warnings (a stray TICKETD_ variable) shown once
    except click.ClickException as exc:   # settings it cannot read: it could not look
        _could_not_look(health.cannot_look("settings", health.UNKNOWN, exc.message), exc.message, as_json)
    try:
        # A check must answer within its own timeout: a lock or a statement waited on for longer is the problem.
        engine = open_engine(config, settings, statement_timeout=STATUS_STATEMENT_SECONDS)
        desk = desk_status(engine, settings.data_dir)
        desk["imap"] = imap_status(engine, settings.imap)
        desk["mail_auth"] = mail_auth_status(engine, settings)
        flow = health.mail_flow(engine)
    except NoDatabase as exc:   # the desk has no database: nothing is received, processed or sent
        # The pid file needs no database: a daemon running there says --config is not its settings.
        _could_not_look(health.unreachable_database(exc.message), exc.message, as_json,
                        daemon=daemon_status(settings.data_dir))
    except click.ClickException as exc:   # a schema it cannot read (another version): it could not look
        _could_not_look(health.cannot_look("database", health.UNKNOWN, exc.message), exc.message, as_json)
    except Unreachable as exc:   # out of reach, or locked by another session past the patience of a reader
        message = database_problem(settings.database_url, exc)
        _could_not_look(health.unreachable_database(message), message, as_json)
    desk["queue"] = queue_status(settings)
    desk["rules"] = rules_status(settings.rules_file, settings.data_dir, desk["daemon"])
    desk["disks"], desk["max_message_bytes"] = disk_status(settings), settings.smtp.max_message_bytes
    verdict = health.assess(desk, flow)
    with _reader_may_leave():
        if as_json:
            print_json({**desk, **verdict.summary()})
        else:
            _print_status(desk, verdict)
    click.get_current_context().exit(verdict.state)


@contextlib.contextmanager
def _reader_may_leave():
    """Printing for a reader that may stop early (`ticketd status | head -1`, a check that reads the
    health line): its closed pipe does not change the exit status, which click made 1 whatever the health."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's docs (signal, "Note on SIGPIPE"): stdout to /dev/null, so the interpreter's flush at exit
        # does not fail on the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_verdict(verdict, as_json: bool, daemon: dict | None = None) -> None:
    """The summary of a status that could not look, on stdout for the check to show: always one JSON object
    with --json, which monitoring parses; the daemon's state too when it could be read."""
    from ticketd.clock import iso, utcnow

    if as_json:
        print_json({"at": iso(utcnow()), **({"daemon": daemon} if daemon else {}), **verdict.summary()})
        return
    click.echo(f"health   {verdict.line()}")
    if daemon:
        click.echo(f"daemon   {_daemon_line(daemon)}")


def _could_not_look(verdict, message: str, as_json: bool, daemon: dict | None = None) -> None:
    """The one line every command gives, exiting with the verdict's state, and the summary on stdout."""
    with _reader_may_leave():
        _print_verdict(verdict, as_json, daemon)
    error = click.ClickException(message)
    error.exit_code = verdict.state
    raise error from None


def _print_status(desk: dict, verdict) -> None:
    from ticketd.health import duration

    def oldest(seconds) -> str:   # in the words of the health line above it
        return "" if seconds is None else f" (oldest {duration(seconds)})"

    inbox, outbox, timers = desk["inbox"], desk["outbox"], desk["timers"]
    click.echo(f"health   {verdict.line()}")
    click.echo(f"daemon   {_daemon_line(desk['daemon'])}")
    click.echo(f"queue    {_queue_line(desk['queue'])}")
    if desk["queue"].get("workers") is not None:
        click.echo(f"workers  {_workers_line(desk['queue'])}")
    for box in desk["imap"]:
        click.echo(f"imap     {_imap_line(box)}")
    rules = desk["rules"]
    if not rules["valid"]:
        click.echo(f"rules    {rules['file']}: {len(rules['errors'])} error(s), not in force")
    else:
        click.echo(f"rules    {rules['file']}: valid" + ("" if rules["in_force"] is not False else
                                                        ", NOT IN FORCE (the daemon keeps the rules it had)"))
    click.echo(f"inbox    waiting {inbox['waiting']}{oldest(inbox['oldest_waiting_seconds'])}, processing "
               f"{inbox['processing']}, quarantined {inbox['quarantined']}, done {inbox['done']}")
    # The oldest unsent is pending or sending; it stands after pending, as the inbox's after waiting.
    click.echo(f"outbox   pending {outbox['pending']}{oldest(outbox['oldest_unsent_seconds'])}, sending "
               f"{outbox['sending']}, failed {outbox['failed']}, sent {outbox['sent']}")
    click.echo("tickets  " + ", ".join(f"{name} {n}" for name, n in desk["tickets"].items()))
    # Due yet waiting on purpose (a quarantined reply holds them) is no sweep falling behind.
    held = f", held by quarantined replies {timers['held']}" if timers["held"] else ""
    click.echo(f"timers   armed {timers['armed']}, overdue {timers['overdue']}{held}, "
               f"next due {timers['next_due_at'] or '-'}")
    for disk in desk["disks"]:
        click.echo(f"disk     {_disk_line(disk)}")
    if desk.get("mail_auth") is not None:
        click.echo(f"auth     {_mail_auth_line(desk['mail_auth'])}")


def _mail_auth_line(auth: dict) -> str:
    ids = ", ".join(auth["trusted_authserv_ids"])
    return (f"{' and '.join(auth['asked_by'])}: {auth['from_trusted']} of the newest {auth['looked_at']} mails "
            f"carry Authentication-Results from {ids} on top")


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
    from ticketd.health import oversized, set_aside

    too_big = f"; {oversized(box)} LEFT ON THE SERVER" if box.get("oversized") else ""
    if box.get("set_aside"):   # mail the server refused to hand out: it waits there unread
        too_big += "; " + set_aside(box).replace("set aside", "SET ASIDE", 1) + " UNREAD ON THE SERVER"
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
