"""A database another session holds locked: the commands that read give up within seconds, naming who holds it.

Status waited for ever behind an admin's `LOCK TABLE` on PostgreSQL, and
30 s behind a sqlite3 shell's exclusive lock before a line about "the new
database"; `tickets list` the same. The locks here are taken by a second,
real connection, as the admin's would be.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from tests.cli import run_cli
from tests.conftest import write_config
from ticketd.app import build_app
from ticketd.settings import load_settings
from ticketd.store.db import make_engine

# Well under what status did before (for ever on PostgreSQL, 30 s on SQLite), with room for a busy machine.
GIVES_UP_WITHIN_SECONDS = 15


def _desk(tmp_path, url: str):
    """A desk's database, built as `ticketd run` builds it, and its config."""
    config = write_config(tmp_path, url)
    build_app(load_settings(config, environ={})).engine.dispose()
    return config


def _timed(config, *args: str):
    began = time.monotonic()
    done = run_cli(config, *args)
    return done, time.monotonic() - began


def _one_error_line(done) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0].removeprefix("Error: ")


@pytest.fixture
def postgres_holder(tmp_path, postgres_url):
    """(config, connect): a desk on PostgreSQL, and a way to open the admin's own session on it."""
    config = _desk(tmp_path, postgres_url)
    sessions = []

    def connect() -> psycopg.Connection:
        session = psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"),
                                  application_name="schema-by-hand")
        sessions.append(session)
        return session

    yield config, connect
    for session in sessions:
        session.close()


@pytest.mark.parametrize("lock", ["LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE",
                                  # a migration stuck in its open transaction: status stops at the version check
                                  "ALTER TABLE schema_version ADD COLUMN half_done integer"])
def test_status_on_a_postgres_table_locked_by_another_session_is_critical_naming_it(postgres_holder, lock):
    config, connect = postgres_holder
    admin = connect()
    admin.execute(lock)   # the transaction stays open, the lock held

    done, took = _timed(config, "status")
    as_json, took_json = _timed(config, "status", "--json")

    assert (done.returncode, as_json.returncode) == (2, 2), done.stderr
    assert max(took, took_json) < GIVES_UP_WITHIN_SECONDS, (took, took_json)
    table = lock.split()[2]
    line = done.stdout.splitlines()[0]
    assert line.startswith(f"health   CRITICAL: the database is locked: pid {admin.info.backend_pid} "
                           f"(application schema-by-hand, user postgres) holds {table} exclusively, "), line
    assert "(idle in transaction)" in line and f"its last query: {lock}" in line, line
    assert "lock timeout" in line, line
    assert _one_error_line(done) == line.removeprefix("health   CRITICAL: ")
    [problem] = json.loads(as_json.stdout)["problems"]
    assert (problem["part"], problem["state"]) == ("database", "critical")
    assert problem["text"].startswith(f"the database is locked: pid {admin.info.backend_pid} "), problem


@pytest.mark.parametrize("args", [("tickets", "list"), ("tickets", "show", "1"), ("outbox", "list")])
def test_reading_commands_on_a_locked_postgres_database_end_with_one_line(postgres_holder, args):
    config, connect = postgres_holder
    admin = connect()
    admin.execute("LOCK TABLE tickets, outbox IN ACCESS EXCLUSIVE MODE")

    done, took = _timed(config, *args)

    assert done.returncode == 1 and took < GIVES_UP_WITHIN_SECONDS, (done.returncode, took, done.stderr)
    line = _one_error_line(done)
    assert line.startswith(f"the database is locked: pid {admin.info.backend_pid} (application schema-by-hand, "
                           "user postgres) holds "), line


def _hold_exclusively(path) -> sqlite3.Connection:
    """A sqlite3 shell's way to keep everyone out: exclusive locking mode, and a write in an open transaction.

    (A plain BEGIN EXCLUSIVE keeps out only writers: in WAL mode readers go on reading beside it.)
    """
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE tickets SET subject = subject")
    return holder


def test_status_on_a_sqlite_file_held_exclusively_is_critical_naming_the_process(tmp_path):
    path = tmp_path / "t.db"
    config = _desk(tmp_path, f"sqlite:///{path}")
    holder = _hold_exclusively(path)
    try:
        done, took = _timed(config, "status")
        as_json, took_json = _timed(config, "status", "--json")
        listed, took_list = _timed(config, "tickets", "list")
    finally:
        holder.close()

    assert (done.returncode, as_json.returncode, listed.returncode) == (2, 2, 1), done.stderr
    assert max(took, took_json, took_list) < GIVES_UP_WITHIN_SECONDS, (took, took_json, took_list)
    line = done.stdout.splitlines()[0]
    assert line.startswith(f"health   CRITICAL: the database is locked: process {os.getpid()} ("), line
    assert line.endswith(f") holds {path} exclusively; gave up waiting"), line
    [problem] = json.loads(as_json.stdout)["problems"]
    assert (problem["part"], problem["state"]) == ("database", "critical")
    assert problem["text"].startswith(f"the database is locked: process {os.getpid()} ("), problem
    assert _one_error_line(listed).startswith(f"the database is locked: process {os.getpid()} ("), listed.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_daemons_writers_keep_waiting_while_status_gives_up(tmp_path, kind, request):
    """Mail written behind the lock waits its turn, as before: only the commands that read are impatient."""
    url = f"sqlite:///{tmp_path}/t.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    config = _desk(tmp_path, url)
    if kind == "sqlite":
        holder = _hold_exclusively(tmp_path / "t.db")
    else:
        holder = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
        holder.execute("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
    writer, outcome = make_engine(url), []

    def write() -> None:
        try:
            with writer.begin() as conn:
                conn.execute(text("UPDATE tickets SET subject = subject"))
            outcome.append("written")
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=write)
    try:
        thread.start()
        done, took = _timed(config, "status")
        assert done.returncode == 2 and took < GIVES_UP_WITHIN_SECONDS, (took, done.stdout)
        assert "the database is locked" in done.stdout.splitlines()[0], done.stdout
        assert thread.is_alive() and not outcome, outcome   # still waiting, past status's patience
    finally:
        holder.close()
        thread.join(timeout=30)
        writer.dispose()
    assert outcome == ["written"]
