"""Shared fixtures: real databases (SQLite file, PostgreSQL), an app, a receiver, a sink."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from tests.ports import free_port  # noqa: F401  (the tests import it from here)
from ticketd.app import build_app
from ticketd.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PG_ADMIN_URL = os.environ.get("TICKETD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TICKETD_TEST_REDIS", "redis://127.0.0.1:6379/15")

MINIMAL_RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support, billing]}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - name: invoices go to billing
    if: {subject: "(?i)invoice|refund"}
    then: {group: billing, priority: high}
  - name: everything else
    then: {group: support}
timers:
  new:              {respond_within: 4h, on_breach: reassign}
  open:             {respond_within: 1d, on_breach: reassign}
  waiting_customer: {warn_after: 3d, close_after: 4d}
"""
# One support group by round robin that every ticket goes to: with Alice alone, with Alice and Bob, and with three
# agents alike.
ONE_AGENT = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""
TWO_AGENTS = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""
THREE_AGENTS = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]}
  - {email: a2@example.com, name: A2, groups: [support]}
  - {email: a3@example.com, name: A3, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ticketd.db"


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = "ticketd_test_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        # FORCE (PostgreSQL 13+) ends the sessions still open and waits for them: a
        # pg_terminate_backend() before it only asks, and a session still exiting failed the drop.
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ticketd.db"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def receiver_app(make_app, db_url):
    """An App and its SMTP receiver, started, on each database; stopped afterwards."""
    from ingest.smtp import Receiver

    app = make_app(db_url)
    receiver = Receiver(app)
    receiver.start()
    yield app, receiver
    receiver.stop()


def write_config(tmp_path: Path, db_url: str, *, rules: str = MINIMAL_RULES, smtp_port: int | None = None,
                 outbound_port: int = 2, extra: str = "") -> Path:
    """ticketd.yaml and rules.yaml in tmp_path; a top-level key in `extra` replaces the default one."""
    (tmp_path / "rules.yaml").write_text(rules)
    defaults = {
        "support_address": "support@example.com",
        "database_url": f'"{db_url}"',
        "data_dir": f"{tmp_path / 'var'}",
        "secret_key": "test-secret",
        "rules_file": f"{tmp_path / 'rules.yaml'}",
        "smtp": f"\n  listen: 127.0.0.1:{smtp_port or free_port()}",
        "outbound": f"\n  host: 127.0.0.1\n  port: {outbound_port}",
        "sweep_seconds": "0.2",
    }
    overridden = set(re.findall(r"(?m)^(\w+):", extra))   # a key written twice is an error
    config = tmp_path / "ticketd.yaml"
    config.write_text("".join(f"{key}: {value}\n" for key, value in defaults.items() if key not in overridden)
                      + extra)
    return config


@pytest.fixture
def make_app(tmp_path):
    """Build an App on a given database URL with the minimal rules."""
    apps = []

    def _make(db_url: str, **kw):
        config = write_config(tmp_path, db_url, **kw)
        app = build_app(load_settings(config, environ={}))
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.engine.dispose()


# Real servers many test files share: each a fixture here, started on a free port and stopped after the test.

@pytest.fixture
def sink():
    """An aiosmtpd sink standing in for the smarthost."""
    from tests.sink import Sink

    s = Sink(free_port()).start()
    yield s
    s.stop()


@pytest.fixture
def processes():
    """DaemonProcess objects a test starts (append them); stopped in reverse order."""
    started: list = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def redis_server():
    """A private redis-server process."""
    from tests.test_outbound_processes import RedisServer

    server = RedisServer(free_port()).start()
    yield server
    server.stop()
