"""`ticketd quarantine retry ID` that the running daemon beats to the mail: it says what became of the mail.

The race is made certain on PostgreSQL: a statement trigger holds the
command's claim of the mail (the UPDATE after its requeue) on an advisory
lock the test holds, while the daemon's own processing (`drain`) takes the
mail; then the lock is let go and the command finds the mail taken.
"""

from __future__ import annotations

import smtplib
import threading
import time

import sqlalchemy

from ingest.smtp import Receiver
from tests.cli import run_cli
from tests.test_quarantine_retry import _nested
from ticketd.pipeline import drain
from ticketd.views import list_quarantine

APP_NAME = "quarantine-retry-under-test"
LOCK = 914_273

_HOLD_THE_CLAIM = f"""
CREATE FUNCTION hold_the_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Only the command's UPDATE of a mail already back in line (its claim), not its requeue.
  IF current_setting('application_name') = '{APP_NAME}'
     AND EXISTS (SELECT 1 FROM raw_mail WHERE state = 'received') THEN
    PERFORM pg_advisory_xact_lock_shared({LOCK});
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER hold_the_claim BEFORE UPDATE ON raw_mail FOR EACH STATEMENT EXECUTE FUNCTION hold_the_claim();
"""


def _quarantined_mail(make_app, postgres_url) -> int:
    app = make_app(postgres_url, extra="max_mime_depth: 3\n")
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.sendmail("cust@example.org", ["support@example.com"], _nested(5, "Scanner jams", "<jam@x>"))
    finally:
        receiver.stop()
    drain(app)
    [held] = list_quarantine(app.engine)
    return held["id"]


def _retry_beaten_by(daemon_app, config, raw_id: int, postgres_url: str, monkeypatch):
    """`quarantine retry raw_id`, whose claim waits until `daemon_app` has processed the mail."""
    monkeypatch.setenv("PGAPPNAME", APP_NAME)
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    result = {}
    with admin.connect() as conn:
        conn.exec_driver_sql(_HOLD_THE_CLAIM)
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK})")
        command = threading.Thread(target=lambda: result.update(done=run_cli(config, "quarantine", "retry",
                                                                             str(raw_id))))
        command.start()
        deadline = time.monotonic() + 30
        while not conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = "
                f"'advisory' AND NOT l.granted AND a.application_name = '{APP_NAME}'").scalar():
            assert time.monotonic() < deadline, "the command never came to claim the mail"
            time.sleep(0.05)
        assert drain(daemon_app) == 1   # the daemon's processor takes the mail back in line first
        conn.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK})")
        command.join(timeout=60)
        conn.exec_driver_sql("DROP TRIGGER hold_the_claim ON raw_mail")
    admin.dispose()
    return result["done"]


def test_the_daemon_made_it_a_ticket_and_the_command_names_the_ticket(tmp_path, make_app, postgres_url,
                                                                       monkeypatch):
    raw_id = _quarantined_mail(make_app, postgres_url)
    daemon = make_app(postgres_url, extra="max_mime_depth: 20\n")   # the limit raised, as the admin did
    said = _retry_beaten_by(daemon, tmp_path / "ticketd.yaml", raw_id, postgres_url, monkeypatch)
    assert said.returncode == 0, said.stderr
    assert said.stdout == (f"mail {raw_id} was taken by the running daemon first, which processed it: "
                           "ticket 1 (new)\n")


def test_the_daemon_failed_it_again_and_the_command_says_so_and_fails(tmp_path, make_app, postgres_url,
                                                                       monkeypatch):
    raw_id = _quarantined_mail(make_app, postgres_url)
    daemon = make_app(postgres_url, extra="max_mime_depth: 3\n")   # the daemon still has the old limit
    said = _retry_beaten_by(daemon, tmp_path / "ticketd.yaml", raw_id, postgres_url, monkeypatch)
    assert said.returncode == 1
    assert said.stdout == ""
    assert said.stderr.startswith(f"mail {raw_id} was taken by the running daemon first, which failed it again: "
                                  "it stays in quarantine:\n"), said.stderr
    assert "nest" in said.stderr.split("\n", 1)[1].lower(), said.stderr
    assert [q["id"] for q in list_quarantine(daemon.engine)] == [raw_id]
