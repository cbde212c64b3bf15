"""schema.sql is the one DDL: both engines build from it and the mapping agrees with it."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import inspect, text

from ticketd.store.db import durably, ensure_schema, insert_if_absent, make_engine, schema_statements
from ticketd.store.tables import metadata, rr_cursor


def _shape(engine):
    insp = inspect(engine)
    tables = {}
    for name in insp.get_table_names():
        cols = {c["name"]: bool(c["nullable"]) for c in insp.get_columns(name)}
        pk = tuple(insp.get_pk_constraint(name)["constrained_columns"])
        # SQLite reflects a PRIMARY KEY column as nullable; it never is.
        cols.update({c: False for c in pk})
        uniques = {tuple(i["column_names"]) for i in insp.get_indexes(name) if i["unique"]}
        uniques |= {tuple(u["column_names"]) for u in insp.get_unique_constraints(name)}
        tables[name] = (cols, pk, uniques)
    return tables


def test_mapping_agrees_with_schema_sql(db_url):
    engine = make_engine(db_url)
    assert ensure_schema(engine) is True
    assert ensure_schema(engine) is False  # idempotent: a restart does not rebuild
    built = _shape(engine)
    assert set(built) == set(metadata.tables)
    for name, table in metadata.tables.items():
        cols, pk, uniques = built[name]
        mapped = {c.name: c.nullable for c in table.columns}
        assert cols == mapped, f"{name}: schema.sql and tables.py disagree on columns or NULLs"
        assert pk == tuple(c.name for c in table.primary_key.columns), name
        mapped_uniques = {tuple(c.name for c in con.columns) for con in table.constraints
                          if con.__class__.__name__ == "UniqueConstraint"}
        mapped_uniques |= {(c.name,) for c in table.columns if c.unique}
        assert mapped_uniques <= uniques | {pk}, f"{name}: a unique key in tables.py is missing in schema.sql"
    engine.dispose()


def test_insert_if_absent_says_whether_it_added_the_row(db_url):
    from datetime import datetime

    engine = make_engine(db_url)
    ensure_schema(engine)
    row = dict(group_name="support", last_agent=None, updated_at=datetime(2026, 5, 1))
    with engine.begin() as conn:
        assert insert_if_absent(conn, rr_cursor, row, ["group_name"]) is True
        assert insert_if_absent(conn, rr_cursor, {**row, "last_agent": "a@example.com"}, ["group_name"]) is False
        assert conn.execute(sqlalchemy.select(rr_cursor.c.last_agent)).scalars().all() == [None]
    engine.dispose()


def test_sqlite_runs_in_wal_with_busy_timeout(sqlite_url):
    engine = make_engine(sqlite_url)
    ensure_schema(engine)
    with durably(engine) as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    # The pragma is set only when it changes: the pooled connection goes back
    # and forth between the two kinds of transaction and must follow.
    for _ in range(2):
        with durably(engine) as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: raw mail we acknowledge
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL: derived state
        with engine.begin() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
    assert engine.pool.checkedin() == 1  # it was the one connection throughout
    engine.dispose()


def test_postgres_waits_for_the_wal_flush_only_for_mail_we_acknowledge(postgres_url):
    engine = make_engine(postgres_url)
    ensure_schema(engine)
    for _ in range(2):   # the pooled connection goes back and forth
        with durably(engine) as conn, conn.begin():
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        with engine.begin() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
    engine.dispose()


def _terminate_backend(postgres_url: str, pid: int) -> None:
    """Kill one server process, as a restart or an idle timeout would, and wait until it is gone."""
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    admin.dispose()


def test_postgres_connection_killed_while_idle_is_replaced_before_use(postgres_url, monkeypatch):
    from ticketd.store import db

    engine = make_engine(postgres_url)
    ensure_schema(engine)
    with engine.connect() as conn:
        first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    _terminate_backend(postgres_url, first_pid)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)   # the pool's one connection counts as idle
    with engine.begin() as conn:   # no error: the ping found it dead and the pool connected afresh
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first_pid
    # A connection just given back is not pinged: one statement, one round trip.
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    _terminate_backend(postgres_url, pid)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    with engine.connect() as conn:   # SQLAlchemy discarded the dead pool after that error
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_postgres_spelling_is_rewritten():
    statements = schema_statements("postgresql")
    joined = "\n".join(statements)
    assert "AUTOINCREMENT" not in joined and "BLOB" not in joined
    assert "GENERATED BY DEFAULT AS IDENTITY" in joined and "BYTEA" in joined
    assert all(not s.startswith("--") for s in statements)


def test_processes_starting_together_create_the_schema_once(db_url):
    """`ticketd run` and several `ticketd worker`s starting at the same moment on an empty database."""
    import subprocess
    import sys

    script = ("import sys; from ticketd.store.db import make_engine, ensure_schema; "
              "print(ensure_schema(make_engine(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    assert sorted(out.strip() for _, out, _ in results) == ["False"] * 5 + ["True"]
