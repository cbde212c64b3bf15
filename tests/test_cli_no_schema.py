"""Only `ticketd run` and `ticketd worker` create ticketd's database: every other command finds none and says so.

A command pointed at the wrong place (a mistyped --config, the PostgreSQL
admin database) must not answer "healthy" or "no tickets" over a database
it just made, nor leave ticketd's tables in someone else's database. A
command that only reads does not upgrade an older database either.
"""

from __future__ import annotations

import json
import os

from sqlalchemy import inspect, text

from tests.cli import run_cli
from tests.conftest import write_config
from tests.test_schema_migrations import _build_v1
from ticketd import health
from ticketd.store.db import make_engine

READING = [("tickets", "list"), ("tickets", "show", "1"), ("tickets", "files", "1"), ("outbox", "list"),
           ("quarantine", "list"), ("report",), ("agents", "list")]
WRITING = [("tickets", "close", "1", "--silent"), ("tickets", "assign", "1", "alice@example.com"),
           ("outbox", "retry", "--all-failed"), ("agents", "away", "alice@example.com"),
           ("quarantine", "retry", "1"), ("tickets", "delete", "1", "--yes")]


def _tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _status_says(config, line: str) -> None:
    """`status` and `status --json`: CRITICAL (2), the database's problem alone, `line` in it."""
    as_text, as_json = run_cli(config, "status"), run_cli(config, "status", "--json")
    for done in (as_text, as_json):
        assert done.returncode == health.CRITICAL, done
        assert "Traceback" not in done.stderr and line in done.stderr, done.stderr
    first = as_text.stdout.splitlines()[0]
    assert first.startswith("health   CRITICAL: ") and line in first, as_text.stdout
    desk = json.loads(as_json.stdout)
    assert (desk["healthy"], desk["health"]) == (False, "critical")
    [problem] = desk["problems"]
    assert (problem["part"], problem["state"]) == ("database", "critical") and line in problem["text"], problem


def test_a_missing_sqlite_file_is_critical_for_status_and_refused_by_every_command(tmp_path):
    db = tmp_path / "nowhere" / "x.db"
    config = write_config(tmp_path, f"sqlite:///{db}")

    _status_says(config, f"no database at {db}: ")
    for args in READING + WRITING:
        done = run_cli(config, *args)
        assert done.returncode == 1, (args, done)
        assert f"Error: no database at {db}: " in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)

    assert not db.parent.exists()                 # neither the file nor its directory
    assert not (tmp_path / "var").exists()        # nor a data_dir with a signing key for a desk that is not there


def test_a_database_without_ticketds_tables_is_left_without_them(tmp_path, postgres_url):
    config = write_config(tmp_path, postgres_url)
    shown = postgres_url.rsplit("/", 1)[1]

    _status_says(config, "holds no ticketd tables")
    for args in READING + WRITING:
        done = run_cli(config, *args)
        assert done.returncode == 1, (args, done)
        [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert "holds no ticketd tables" in error and shown in error, (args, done.stderr)

    assert _tables(postgres_url) == []


def test_an_empty_sqlite_file_is_not_made_a_database(tmp_path):
    db = tmp_path / "x.db"
    db.touch()
    config = write_config(tmp_path, f"sqlite:///{db}")

    _status_says(config, "holds no ticketd tables")
    for args in READING + WRITING:
        done = run_cli(config, *args)
        assert done.returncode == 1 and "holds no ticketd tables" in done.stderr, (args, done)

    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("x.db")] == ["x.db"]   # no locks
    assert db.stat().st_size == 0


def test_a_reading_command_does_not_upgrade_an_older_database(tmp_path, db_url):
    _build_v1(db_url).dispose()
    config = write_config(tmp_path, db_url)

    for args in READING + [("status",)]:
        done = run_cli(config, *args)
        assert done.returncode == (health.UNKNOWN if args == ("status",) else 1), (args, done)
        assert "the database has schema version 1, and this ticketd reads version " in done.stderr, done.stderr
        assert "`ticketd run`" in done.stderr and "Traceback" not in done.stderr

    assert "schema_version" not in _tables(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:   # the v1 tickets table, as it was: no merged_into added
        assert "merged_into" not in [c["name"] for c in inspect(conn).get_columns("tickets")]
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar_one() == 1
    engine.dispose()


def test_status_under_an_older_daemon_says_to_restart_it(tmp_path, sqlite_url):
    """The package upgraded in place under a running daemon: the new CLI reads a database the daemon keeps at
    its older version until it restarts, and says so rather than "start `ticketd run`"."""
    from ticketd.pidlock import PidLock, pid_path

    _build_v1(sqlite_url).dispose()
    config = write_config(tmp_path, sqlite_url)
    (tmp_path / "var").mkdir()
    lock = PidLock(pid_path(tmp_path / "var")).acquire()   # held as a running `ticketd run` holds it
    try:
        done = run_cli(config, "status")
    finally:
        lock.release()
    assert done.returncode == health.UNKNOWN, done
    assert (f"the running `ticketd run` (pid {os.getpid()}) has not upgraded it, being older than this ticketd: "
            "restart it, and it upgrades it as it starts") in done.stderr, done.stderr
    done = run_cli(config, "tickets", "list")
    assert "start this ticketd's `ticketd run`, which upgrades it" in done.stderr, done.stderr


def test_ticketd_run_still_creates_the_database(tmp_path, processes):
    from tests.daemon import DaemonProcess

    db = tmp_path / "new" / "t.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    processes.append(DaemonProcess(config).start())

    assert db.exists() and "raw_mail" in _tables(f"sqlite:///{db}")
    done = run_cli(config, "status")
    assert done.returncode == health.OK, done
