"""`ticketd tickets assign / close`: an admin changes a ticket from the command line; the daemon sends the mail."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from tests.cli import cli_ok, run_cli
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import Sink, customer_mail, wait_until
from ticketd.clock import utcnow
from ticketd.store import tickets as store
from ticketd.store.tables import events, outbox, tickets

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support], away: true}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""


def _ticket(app, status: str = "open", **fields) -> int:
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject="Printer on fire", status=status, requester="cust@example.org",
                                        group_name="support", created_at=now, updated_at=now, **fields)
        store.add_participant(conn, ticket_id, "cust@example.org", "requester", "Customer", now)
    return ticket_id


def _rows(app, table, ticket_id: int) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(table.c.ticket_id == ticket_id)
                                              .order_by(table.c.id)).mappings()]


def test_assign_to_an_agent_or_a_group_is_an_event_and_tells_the_agent(tmp_path, make_app, db_url):
    app = make_app(db_url, rules=RULES)
    config = tmp_path / "ticketd.yaml"
    ticket_id = _ticket(app)

    said = cli_ok(config, "tickets", "assign", str(ticket_id), "Bob@example.com")   # away, but asked for by name
    assert f"ticket [#{ticket_id}] assigned to bob@example.com" in said
    assert "no `ticketd run` holds" in said and "sends the mail at its next outbox sweep" in said
    [assigned] = [e for e in _rows(app, events, ticket_id) if e["kind"] == "assigned"]
    assert (assigned["actor"], assigned["from_value"], assigned["to_value"]) == ("admin:cli", None, "bob@example.com")
    [notice] = _rows(app, outbox, ticket_id)
    assert (notice["recipient"], notice["template"]) == ("bob@example.com", "agent/ticket_assigned")

    cli_ok(config, "tickets", "assign", str(ticket_id), "support")   # by the group's strategy, not back to bob
    with app.engine.connect() as conn:
        assert conn.execute(select(tickets.c.assignee).where(tickets.c.id == ticket_id)).scalar_one() == \
            "alice@example.com"

    unknown = run_cli(config, "tickets", "assign", str(ticket_id), "mallory@example.com")
    assert unknown.returncode == 1 and "mallory@example.com is not an agent in rules.yaml" in unknown.stderr
    missing = run_cli(config, "tickets", "assign", "999", "support")
    assert missing.returncode == 1 and "no ticket 999" in missing.stderr


def test_assign_takes_an_agents_full_name_as_assign_by_mail_does(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url, rules=RULES)
    config = tmp_path / "ticketd.yaml"
    ticket_id = _ticket(app)

    said = cli_ok(config, "tickets", "assign", str(ticket_id), "ALICE")
    assert f"ticket [#{ticket_id}] assigned to alice@example.com" in said
    unknown = run_cli(config, "tickets", "assign", str(ticket_id), "Dave")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert ("'Dave' is neither an agent nor a group in rules.yaml (agents: Alice (alice@example.com), "
            "Bob (bob@example.com); groups: support)") in unknown.stderr


@pytest.mark.parametrize("silent", [False, True])
def test_close_is_logged_as_the_admins_and_tells_the_customer_unless_silent(tmp_path, make_app, db_url, silent):
    app = make_app(db_url, rules=RULES)
    config = tmp_path / "ticketd.yaml"
    ticket_id = _ticket(app)
    cli_ok(config, "tickets", "close", str(ticket_id), "--reason", "duplicate of a call", *(["--silent"] if silent else []))

    with app.engine.connect() as conn:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).mappings().one()
    assert row["status"] == "closed" and row["closed_at"] is not None
    [closed] = [e for e in _rows(app, events, ticket_id) if e["kind"] == "closed_by_admin"]
    assert closed["actor"] == "admin:cli" and "duplicate of a call" in closed["reason"]
    mail = [(r["recipient"], r["template"]) for r in _rows(app, outbox, ticket_id)]
    assert mail == ([] if silent else [("cust@example.org", "requester/ticket_closed")])
    if not silent:
        assert b"duplicate of a call" in bytes(_rows(app, outbox, ticket_id)[0]["raw"])

    again = run_cli(config, "tickets", "close", str(ticket_id))
    assert again.returncode == 1 and "already closed" in again.stderr
    closed_assign = run_cli(config, "tickets", "assign", str(ticket_id), "support")
    assert closed_assign.returncode == 1 and "is closed" in closed_assign.stderr


def test_a_merged_ticket_is_refused_naming_the_one_to_change(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url, rules=RULES)
    config = tmp_path / "ticketd.yaml"
    target = _ticket(app)
    source = _ticket(app, status="closed", merged_into=target)
    refused = run_cli(config, "tickets", "close", str(source))
    assert refused.returncode == 1 and f"was merged into [#{target}]: change that one" in refused.stderr


def test_the_running_daemon_sends_the_closing_mail_at_once(tmp_path, sqlite_url):
    # A sweep every ten minutes and a fresh outbox row (no job was enqueued for it by the
    # command): only the sweep the command asks for (SIGUSR1) can send it within the test.
    sink = Sink(free_port()).start()
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=RULES, smtp_port=port, outbound_port=sink.port,
                          extra="sweep_seconds: 600\n")
    daemon = DaemonProcess(config).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(customer_mail(subject="Printer on fire"))
        wait_until(lambda: len(sink.messages) >= 2, timeout=20)   # acknowledgement and alice's notice
        said = cli_ok(config, "tickets", "close", "1", "--reason", "fixed on the phone")
        assert f"the running `ticketd run` (pid {daemon.proc.pid}) sends the mail now" in said
        closing = wait_until(lambda: [m for m in sink.messages if "fixed on the phone" in m.message.get_body(
            ("plain",)).get_content()], timeout=15)
        assert closing[0].rcpt_tos == ["cust@example.org"]
    finally:
        assert daemon.terminate() == 0
        sink.stop()
