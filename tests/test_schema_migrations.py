"""Schema versions: an older database is brought, once and whole, to what schema.sql builds, keeping its rows."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import inspect, text

from tests import dovecot as private_dovecot
from tests.conftest import PG_ADMIN_URL, write_config
from ticketd.store.db import ensure_schema, make_engine, schema_statements
from ticketd.store.imap_cursor import Cursor, load_cursor
from ticketd.store.migrations import BASELINE, LATEST, STEPS, SchemaVersionError, database_version

# The private Dovecot's fixtures, under the names tests ask for.
dovecot, dovecot_factory = private_dovecot.dovecot, private_dovecot.dovecot_factory

V1_SQL = (Path(__file__).parent / "fixtures" / "schema_v1.sql").read_text()
T0 = datetime(2026, 5, 1, 12, 0, 0)
READ_ONLY_BOX = "support@imap.example.com:993/INBOX"   # only read mail there when the old poller first looked
BUSY_BOX = "support@imap.example.com:993/Billing"      # mail taken up to UID 7


@pytest.fixture
def fresh_url(db_url, tmp_path):
    """A second, empty database of the same kind as db_url, to build from schema.sql for comparison."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    name = "ticketd_test_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        # FORCE (PostgreSQL 13+) ends the sessions still open and waits for them: a
        # pg_terminate_backend() before it only asks, and a session still exiting failed the drop.
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _build_v1(url: str, cursors: dict[str, tuple[int, int]] | None = None):
    """A database as ticketd built it before versioning, with a mail, its ticket and IMAP cursors in it."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for stmt in schema_statements(conn.dialect.name, schema_sql=V1_SQL):
            conn.execute(text(stmt))
        conn.execute(text(
            "INSERT INTO tickets (subject, status, requester, created_at, updated_at)"
            " VALUES ('Printer on fire', 'new', 'cust@example.org', :t, :t)"), {"t": T0})
        conn.execute(text(
            "INSERT INTO raw_mail (received_at, source, message_id, dedupe_key, size, raw, state, ticket_id)"
            " VALUES (:t, 'smtp', 'fire@example.org', 'key-1', 5, :raw, 'processed', 1)"),
            {"t": T0, "raw": b"hello"})
        for mailbox, (uidvalidity, last_uid) in (cursors or {}).items():
            conn.execute(text("INSERT INTO imap_cursor (mailbox, uidvalidity, last_uid, updated_at)"
                              " VALUES (:m, :v, :u, :t)"), {"m": mailbox, "v": uidvalidity, "u": last_uid, "t": T0})
    return engine


def _structure(engine) -> dict:
    """Tables, columns, keys and indexes, as the inspector reports them."""
    insp = inspect(engine)
    shape = {}
    for name in insp.get_table_names():
        shape[name] = {
            # A mapping, not a list: ALTER TABLE appends a column where schema.sql may put it in the middle.
            "columns": {c["name"]: (str(c["type"]), bool(c["nullable"]), c["default"])
                        for c in insp.get_columns(name)},
            "primary key": tuple(insp.get_pk_constraint(name)["constrained_columns"]),
            "foreign keys": sorted((tuple(fk["constrained_columns"]), fk["referred_table"],
                                    tuple(fk["referred_columns"])) for fk in insp.get_foreign_keys(name)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(name)),
            "unique constraints": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
        }
    return shape


def _differences(upgraded: dict, fresh: dict) -> str:
    """What the upgraded database lacks or has besides the fresh one, one line each."""
    lines = []
    for table in sorted(set(upgraded) | set(fresh)):
        if table not in upgraded or table not in fresh:
            lines.append(f"  table {table}: only in the {'upgraded' if table in upgraded else 'fresh'} database")
            continue
        for part, want in fresh[table].items():
            have = upgraded[table][part]
            if have == want:
                continue
            if isinstance(want, dict):
                for column in sorted(set(have) | set(want)):
                    if have.get(column) != want.get(column):
                        lines.append(f"  {table}.{column}: upgraded {have.get(column, 'missing')},"
                                     f" fresh {want.get(column, 'missing')}")
            else:
                lines.append(f"  {table} {part}: upgraded {have}, fresh {want}")
    return "\n".join(lines)


def _versions(engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            text("SELECT version, description FROM schema_version ORDER BY version"))]


def _rows(engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


def test_steps_are_numbered_from_the_baseline_without_gaps():
    assert [step.version for step in STEPS] == list(range(BASELINE + 1, LATEST + 1))
    assert all(step.description and "\n" not in step.description for step in STEPS)


def test_version_1_database_is_brought_to_what_schema_sql_builds(db_url, fresh_url, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.schema")
    engine = _build_v1(db_url, {READ_ONLY_BOX: (1700000000, 0), BUSY_BOX: (1700000001, 7)})
    with engine.connect() as conn:
        assert database_version(conn) == BASELINE

    assert ensure_schema(engine) is False   # not created: upgraded

    # The rows survive.
    assert _rows(engine, "tickets")[0][1:3] == ("Printer on fire", "new")
    with engine.connect() as conn:
        mail = conn.execute(text("SELECT message_id, raw, ticket_id FROM raw_mail")).one()
    assert (mail.message_id, bytes(mail.raw), mail.ticket_id) == ("fire@example.org", b"hello", 1)
    # A ticket from before `tickets merge` was merged into nothing.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT merged_into FROM tickets")).all() == [(None,)]
    # A cursor the \Seen-based poller left at 0 is gone, which ingest/imap.py
    # reads as "before its first poll"; one that had moved is kept.
    assert load_cursor(engine, READ_ONLY_BOX) is None
    assert load_cursor(engine, BUSY_BOX) == Cursor(1700000001, 7)
    # The version is the latest, every step recorded and logged once.
    with engine.connect() as conn:
        assert database_version(conn) == LATEST
    assert _versions(engine) == [(step.version, step.description) for step in STEPS]
    for step in STEPS:
        assert caplog.text.count(f"schema: applied step {step.version}: {step.description}") == 1

    # The structure is exactly that of a database built from schema.sql today.
    fresh = make_engine(fresh_url)
    assert ensure_schema(fresh) is True
    upgraded_shape, fresh_shape = _structure(engine), _structure(fresh)
    assert upgraded_shape == fresh_shape, (
        "A version-1 database upgraded by ticketd/store/migrations.py is not what schema.sql builds:\n"
        + _differences(upgraded_shape, fresh_shape)
        + "\nschema.sql changed without a migration step. Add a Step to STEPS in ticketd/store/migrations.py"
        " (the next number, a one-line description, a function doing the same change to an existing"
        " database on SQLite and PostgreSQL). Leave tests/fixtures/schema_v1.sql as it is: it is the"
        " schema installations had before versioning.")
    engine.dispose()
    fresh.dispose()


def test_fresh_database_is_stamped_latest_and_a_second_start_changes_nothing(db_url, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.schema")
    engine = make_engine(db_url)
    assert ensure_schema(engine) is True
    assert _versions(engine) == [(LATEST, "created from schema.sql")]
    assert "applied step" not in caplog.text   # built whole, not stepped through
    shape, stamped = _structure(engine), _rows(engine, "schema_version")

    caplog.clear()
    assert ensure_schema(engine) is False
    assert _structure(engine) == shape
    assert _rows(engine, "schema_version") == stamped
    assert caplog.text == ""
    engine.dispose()


def _stamp_newer(engine) -> int:
    newer = LATEST + 1
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version (version, description, applied_at) VALUES (:v, 'later', :t)"),
                     {"v": newer, "t": T0})
    return newer


def test_database_from_a_newer_ticketd_is_refused_and_left_as_it_is(db_url):
    engine = make_engine(db_url)
    ensure_schema(engine)
    newer = _stamp_newer(engine)
    # A row step 3 would delete, were it run again.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO imap_cursor (mailbox, uidvalidity, last_uid, updated_at)"
                          " VALUES (:m, 1, 0, :t)"), {"m": READ_ONLY_BOX, "t": T0})
    shape, versions, cursors = _structure(engine), _rows(engine, "schema_version"), _rows(engine, "imap_cursor")

    with pytest.raises(SchemaVersionError) as refused:
        ensure_schema(engine)
    message = str(refused.value)
    assert f"schema version {newer}" in message and f"up to version {LATEST}" in message
    assert "Run that newer ticketd" in message
    assert _structure(engine) == shape
    assert _rows(engine, "schema_version") == versions
    assert _rows(engine, "imap_cursor") == cursors
    engine.dispose()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args], capture_output=True, text=True, timeout=60)


def test_ticketd_run_and_reading_commands_exit_with_the_message_on_a_newer_database(tmp_path, db_url):
    config = str(write_config(tmp_path, db_url))
    engine = make_engine(db_url)
    ensure_schema(engine)
    listed = _cli("tickets", "list", "--json", "--config", config)   # an empty database, read
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"

    newer = _stamp_newer(engine)
    engine.dispose()
    for command in (["run"], ["tickets", "list", "--json"]):
        done = _cli(*command, "--config", config)
        assert done.returncode == 1, (command, done.stderr)
        assert f"Error: the database has schema version {newer}" in done.stderr
        assert f"up to version {LATEST}" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""


def test_processes_starting_together_upgrade_a_version_1_database_once(db_url):
    """`ticketd run` and several `ticketd worker`s, new code, starting at the same moment on an old database."""
    _build_v1(db_url, {READ_ONLY_BOX: (1700000000, 0)}).dispose()
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
              "from ticketd.store.db import make_engine, ensure_schema; "
              "print(ensure_schema(make_engine(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    assert [out.strip() for _, out, _ in results] == ["False"] * 6
    logged = "".join(err for _, _, err in results)
    for step in STEPS:
        assert logged.count(f"schema: applied step {step.version}:") == 1, logged
    engine = make_engine(db_url)
    assert [version for version, _ in _versions(engine)] == [step.version for step in STEPS]
    assert load_cursor(engine, READ_ONLY_BOX) is None
    engine.dispose()


def _mail(name: str) -> bytes:
    return (f"From: cust@example.org\r\nTo: support@example.com\r\nSubject: {name}\r\n"
            f"Message-ID: <{name}@example.org>\r\n\r\nThe printer is on fire.\r\n").encode()


@pytest.mark.dovecot
def test_upgraded_mailbox_of_read_mail_takes_only_new_mail(tmp_path, sqlite_url, dovecot, caplog):
    """The \\Seen-based poller left a folder of read mail at UID 0; after the upgrade its history stays put."""
    from ingest.imap import Poller
    from tests.waiting import eventually
    from ticketd.app import build_app
    from ticketd.settings import load_settings

    caplog.set_level(logging.INFO)
    settings = load_settings(write_config(tmp_path, sqlite_url, extra=dovecot.settings_yaml(
        idle=False, poll_seconds=0.2)), environ={})
    box = settings.imap[0]
    with dovecot.client() as client:
        for name in ("lastyear", "lastweek"):
            client.append("INBOX", _mail(name), flags=(b"\\Seen",))
        uidvalidity = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    # What the old poller saved at its first look, having found nothing unseen.
    _build_v1(sqlite_url, {box.key: (uidvalidity, 0)}).dispose()
    with dovecot.client() as client:
        client.append("INBOX", _mail("unread"))   # came while ticketd was stopped for the upgrade

    app = build_app(settings)   # upgrades the database, as `ticketd run` does at start
    poller = Poller(app, box)
    poller.start()
    try:
        assert eventually(lambda: load_cursor(app.engine, box.key) is not None)
        time.sleep(0.6)   # several 0.2 s rounds
    finally:
        poller.stop()
    assert "first poll under UIDVALIDITY" in caplog.text
    assert load_cursor(app.engine, box.key) == Cursor(uidvalidity, 3)
    with app.engine.connect() as conn:
        taken = conn.execute(text("SELECT message_id FROM raw_mail WHERE source = 'imap'")).scalars().all()
    assert taken == ["unread@example.org"]
    app.engine.dispose()
