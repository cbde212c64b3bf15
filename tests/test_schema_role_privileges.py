"""`ticketd run` on a PostgreSQL database its role may not change: one line saying what to grant, no traceback.

PostgreSQL 15 took CREATE on schema public away from every role but the
database's owner: a database made by the DBA and handed to ticketd's role
with CONNECT alone is the common first setup, and an upgrade by a role
that does not own the tables is the common second.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from tests.cli import run_cli
from tests.conftest import PG_ADMIN_URL, write_config
from ticketd.store.db import schema_statements
from ticketd.store.migrations import LATEST

V1_SQL = (Path(__file__).parent / "fixtures" / "schema_v1.sql").read_text()


@pytest.fixture
def database_and_role():
    """(admin URL of a fresh database owned by the admin, URL of the same database as a role owning nothing)."""
    suffix = uuid.uuid4().hex[:12]
    name, role = f"ticketd_test_{suffix}", f"ticketd_role_{suffix}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    server = PG_ADMIN_URL.rsplit("/", 1)[0]
    as_role = sqlalchemy.engine.make_url(server + "/" + name).set(username=role, password=None)
    yield server + "/" + name, as_role.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    admin.dispose()


def _refused_in_one_line(tmp_path, url: str) -> str:
    done = run_cli(write_config(tmp_path, url), "run")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_a_role_that_may_not_create_tables_is_told_what_to_grant(tmp_path, database_and_role):
    _, as_role = database_and_role
    said = _refused_in_one_line(tmp_path, as_role)
    assert "cannot create ticketd's tables" in said
    assert "permission denied for schema public" in said
    assert "OWNER TO" in said and "GRANT CREATE ON SCHEMA public" in said


def test_a_role_that_does_not_own_the_tables_is_told_the_upgrade_needs_their_owner(tmp_path, database_and_role):
    admin_url, as_role = database_and_role
    admin = sqlalchemy.create_engine(admin_url)
    with admin.begin() as conn:
        for stmt in schema_statements("postgresql", schema_sql=V1_SQL):
            conn.execute(text(stmt))
        role = sqlalchemy.engine.make_url(as_role).username
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    admin.dispose()

    said = _refused_in_one_line(tmp_path, as_role)
    assert "cannot upgrade the database" in said and f"from schema version 1 to {LATEST}:" in said
    assert "permission denied" in said or "must be owner of" in said
    assert "owns ticketd's tables" in said
