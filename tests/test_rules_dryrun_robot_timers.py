"""`ticketd rules test` shows the timers the daemon really arms for automatic mail: no respond clock.

docs/rules.md: a ticket opened by automatic mail (an alert, a mail a list
relays) starts no `respond_within`, since no answer is ever sent to it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.cli import cli_ok
from tests.desk import build_mail
from ticketd.pipeline import process_raw
from ticketd.store.inbox import store_raw
from ticketd.store.tables import timers

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - name: everything else
    then: {group: support}
timers:
  new: {respond_within: 4h, on_breach: reassign}
"""


def _dry_run_then_daemon(make_app, sqlite_url, tmp_path, raw: bytes) -> tuple[list[str], list[str]]:
    """`rules test` lines for the mail (with the daemon's config), then the kinds of timers the daemon armed."""
    app = make_app(sqlite_url, rules=RULES)
    (tmp_path / "mail.eml").write_bytes(raw)
    lines = cli_ok(tmp_path / "ticketd.yaml", "rules", "test", str(tmp_path / "rules.yaml"),
                   str(tmp_path / "mail.eml")).splitlines()
    key, message_id = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome is not None and outcome.ticket_id is not None
    with app.engine.connect() as conn:
        armed = conn.execute(select(timers.c.kind).where(timers.c.ticket_id == outcome.ticket_id,
                                                         timers.c.state == "armed")).scalars().all()
    return lines, armed


@pytest.mark.parametrize("headers", [{"Auto_Submitted": "auto-generated"}, {"Precedence": "bulk"}])
def test_automatic_mail_starts_no_respond_clock_in_the_dry_run_as_in_the_daemon(make_app, sqlite_url, tmp_path,
                                                                                headers):
    raw = build_mail("monitor@example.org", "Disk full on db1.\n", subject="Alert", **headers).as_bytes()
    lines, armed = _dry_run_then_daemon(make_app, sqlite_url, tmp_path, raw)

    assert armed == []
    assert not any(line.startswith("timer: respond_within") for line in lines), lines
    assert any(line.startswith("timer: none") for line in lines), lines
    assert any(line.startswith("not answered:") for line in lines), lines


def test_a_customer_mail_still_shows_its_respond_clock(make_app, sqlite_url, tmp_path):
    raw = build_mail("cust@example.org", "The printer is on fire.\n").as_bytes()
    lines, armed = _dry_run_then_daemon(make_app, sqlite_url, tmp_path, raw)

    assert armed == ["respond"]
    assert any(line.startswith("timer: respond_within 4h in new, due ") for line in lines), lines
