"""`ticketd tickets list/show --json` print what PRODUCT.md promises, on both databases."""

from __future__ import annotations

import hashlib
import json
import re
import smtplib
import subprocess
import sys
from email.message import EmailMessage

from ingest.smtp import Receiver
from ticketd.pipeline import drain
from tests.conftest import write_config
from tests.cli import cli_ok, run_cli

TOP_LEVEL = {"id", "tag", "subject", "status", "priority", "type", "requester", "followers", "assignee",
             "group", "created_at", "updated_at"}
MESSAGE = {"direction", "from", "to", "subject", "text", "internal", "matched_by", "attachments"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_tickets_json_has_every_promised_field(tmp_path, db_url, make_app):
    app = make_app(db_url)
    config = write_config(tmp_path, db_url)  # the same database, for the CLI
    receiver = Receiver(app)
    receiver.start()
    pdf = b"%PDF-1.4 not really a pdf\n" * 10
    msg = EmailMessage()
    msg["From"] = "Zoë Kunde <zoe@example.org>"
    msg["To"] = "support@example.com"
    msg["Cc"] = "colleague@example.org"
    msg["Subject"] = "Rechnung doppelt — bitte prüfen"
    msg["Message-ID"] = "<json-1@example.org>"
    msg.set_content("Die Rechnung kam zweimal.\n")
    msg.add_alternative('<p onclick="steal()">Die Rechnung kam <b>zweimal</b>.<script>x()</script></p>',
                        subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="../../etc/Rechnung 1.pdf")
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.send_message(msg)
    finally:
        receiver.stop()
    assert drain(app) == 1

    listed = json.loads(cli_ok(config, "tickets", "list", "--json"))
    assert len(listed) == 1
    summary = listed[0]
    assert TOP_LEVEL <= set(summary) and "messages" not in summary and "events" not in summary
    assert summary["tag"] == f"[#{summary['id']}]"
    assert summary["status"] == "new" and summary["requester"] == "zoe@example.org"
    assert summary["followers"] == ["colleague@example.org"]
    assert summary["subject"] == "Rechnung doppelt — bitte prüfen"
    assert ISO_UTC.match(summary["created_at"]) and ISO_UTC.match(summary["updated_at"])
    assert json.loads(cli_ok(config, "tickets", "list", "--status", "closed", "--json")) == []

    shown = json.loads(cli_ok(config, "tickets", "show", str(summary["id"]), "--json"))
    assert TOP_LEVEL <= set(shown) and {"messages", "events"} <= set(shown)
    # PRODUCT.md: the list has "the same top-level fields (without messages and events)".
    assert set(shown) - {"messages", "events"} == set(summary)
    assert summary["participants"] == shown["participants"] and summary["merged_from"] == shown["merged_from"] == []
    inbound = [m for m in shown["messages"] if m["direction"] == "in"]
    assert len(inbound) == 1
    first = inbound[0]
    assert MESSAGE <= set(first)
    assert first["from"] == "zoe@example.org" and first["matched_by"] == "new" and first["internal"] is False
    assert first["text"].strip() == "Die Rechnung kam zweimal."
    [attachment] = first["attachments"]
    # The sender's path is display-only and cut to a bare name; storage is by content.
    assert attachment == {"filename": "Rechnung 1.pdf", "size": len(pdf),
                          "sha256": hashlib.sha256(pdf).hexdigest(), "content_type": "application/pdf",
                          "inline": False}
    stored = app.settings.attachments_dir / attachment["sha256"][:2] / attachment["sha256"]
    assert stored.read_bytes() == pdf
    # The acknowledgement is on the ticket as a mail out.
    outbound = [m for m in shown["messages"] if m["direction"] == "out"]
    assert [m["template"] for m in outbound if m["to"] == ["zoe@example.org"]] == ["requester/ticket_opened"]
    assert all(MESSAGE <= set(m) for m in outbound)
    assert shown["events"][0]["kind"] == "created" and ISO_UTC.match(shown["events"][0]["at"])

    from sqlalchemy import select

    from ticketd.store.tables import messages

    with app.engine.connect() as conn:
        html = conn.execute(select(messages.c.html)).scalar_one()
    assert "<b>zweimal</b>" in html and "script" not in html and "onclick" not in html


def test_list_filters_by_status_assignee_and_requester(tmp_path, db_url, make_app):
    from ticketd.clock import utcnow
    from ticketd.store import tickets as store

    app = make_app(db_url)
    config = write_config(tmp_path, db_url)
    now = utcnow()
    made = [("new", None, "ann@example.org"), ("open", "alice@example.com", "ann@example.org"),
            ("waiting_customer", "bob@example.com", "ben@example.org"), ("closed", "alice@example.com", "ben@example.org")]
    with app.engine.begin() as conn:
        ids = [store.create_ticket(conn, subject=f"t{i}", status=status, requester=requester, assignee=assignee,
                                   created_at=now, updated_at=now) for i, (status, assignee, requester) in enumerate(made)]

    def listed(*args) -> list[int]:
        return [t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json", *args))]

    assert listed() == ids[::-1]
    assert listed("--open") == [ids[2], ids[1], ids[0]]
    assert listed("--status", "new", "--status", "closed") == [ids[3], ids[0]]
    assert listed("--assignee", "Alice@Example.com") == [ids[3], ids[1]]
    assert listed("--assignee", "alice@example.com", "--open") == [ids[1]]
    assert listed("--assignee", "none") == [ids[0]]
    assert listed("--requester", "ben@example.org") == [ids[3], ids[2]]
    assert listed("--limit", "2") == [ids[3], ids[2]]
    refused = run_cli(config, "tickets", "list", "--open", "--status", "closed")
    assert refused.returncode == 2 and "--open leaves out closed tickets" in refused.stderr


def test_show_unknown_ticket_fails_clearly(tmp_path, sqlite_url, make_app):
    make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "show", "99", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no ticket 99" in done.stderr


def test_an_id_no_row_can_have_is_a_usage_error_not_a_traceback(tmp_path, sqlite_url, make_app):
    """Past 2**31 - 1 PostgreSQL refused the query (past 2**63 - 1, SQLite's driver): every command taking
    an id says which ids there can be; a --limit past any table's size means all, --days past a
    century too."""
    make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    for command in (("tickets", "show", "2147483648"), ("tickets", "merge", "1", "9223372036854775808"),
                    ("quarantine", "retry", "2147483648"), ("outbox", "dismiss", "1", "2147483648"),
                    ("tickets", "close", "0")):
        done = run_cli(config, *command)
        assert done.returncode == 2 and "is not in the range 1<=x<=2147483647" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert json.loads(cli_ok(config, "tickets", "list", "--json", "--limit", "9" * 30)) == []
    assert json.loads(cli_ok(config, "report", "--json", "--days", "9" * 30))["tickets"]["created"] == 0
    # Below the range is a slip, not the smallest value: `--days 0` reported one day, `--limit 0` one ticket.
    for command in (("tickets", "list", "--limit", "0"), ("report", "--days", "-5")):
        done = run_cli(config, *command)
        assert done.returncode == 2 and "is not in the range x>=1" in done.stderr, (command, done.stderr)
    both = run_cli(config, "quarantine", "retry", "5", "--all")
    assert both.returncode == 2 and "give IDs or --all, not both" in both.stderr
    assert cli_ok(config, "tickets", "list") == "no tickets\n"
    assert cli_ok(config, "tickets", "list", "--search", "printer") == "no tickets match\n"
    assert cli_ok(config, "report", "--days", "1").startswith("the last day, ")


def test_a_ticket_is_named_by_its_number_or_its_tag(tmp_path, sqlite_url, make_app):
    make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    for written in ("[#7]", "#7", " 7 "):
        done = run_cli(config, "tickets", "show", written)
        assert done.returncode == 1 and "no ticket 7" in done.stderr, (written, done.stderr)
    done = run_cli(config, "tickets", "show", "[#x]")
    assert done.returncode == 2 and "'[#x]' is not a ticket number; write e.g. 1042 or [#1042]" in done.stderr


def _status(config, *args: str) -> str:
    """What `ticketd status` prints; no daemon runs in these tests, so it exits 2 (critical)."""
    done = run_cli(config, "status", *args)
    assert done.returncode == 2, done.stderr
    return done.stdout


def test_reading_commands_work_while_rules_yaml_is_broken(tmp_path, sqlite_url, make_app):
    make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    (tmp_path / "rules.yaml").write_text("agents:\n  - {emial: x@example.com}\n")   # the daemon keeps its last good rules
    assert json.loads(cli_ok(config, "tickets", "list", "--json")) == []
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    assert json.loads(_status(config, "--json"))["inbox"]["waiting"] == 0
    # A command that acts by the rules says why it waits for a valid file, and that the daemon goes on.
    refused = run_cli(config, "agents", "list")
    assert refused.returncode == 1 and "unknown key `emial`" in refused.stderr
    assert "This command acts by the rules, so it waits for a valid file" in refused.stderr
    assert "a running daemon keeps the rules it loaded before" in refused.stderr


def test_commands_that_act_by_the_rules_wait_for_a_missing_rules_yaml(tmp_path, sqlite_url, make_app):
    """README: forget refuses an agent, `tickets follow` too; without the file nobody would be one."""
    from ticketd.clock import utcnow
    from ticketd.store import tickets as store
    from ticketd.store.tables import events

    app = make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject="Printer on fire", status="open", requester="cust@example.org",
                                        group_name="support", assignee="alice@example.com", created_at=now,
                                        updated_at=now)
        store.add_participant(conn, ticket_id, "cust@example.org", "requester", "Customer", now)
        conn.execute(events.insert().values(ticket_id=ticket_id, at=now, actor="rule:everything else",
                                            kind="assigned", to_value="alice@example.com"))
    (tmp_path / "rules.yaml").unlink()   # the daemon keeps its last good rules (docs/settings.md)
    before = json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))

    for command in (("forget", "alice@example.com", "--yes"), ("tickets", "follow", str(ticket_id),
                                                                 "alice@example.com"), ("agents", "list")):
        refused = run_cli(config, *command)
        assert refused.returncode == 1, (command, refused.stdout)
        assert f"no rules file at {tmp_path / 'rules.yaml'}" in refused.stderr
        assert "This command acts by the rules, so it waits for the file" in refused.stderr
        assert "a running daemon keeps the rules it loaded before" in refused.stderr
        assert refused.stdout == ""

    after = json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))
    assert after == before and after["assignee"] == "alice@example.com" and after["followers"] == []
    assert [t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json"))] == [ticket_id]
    assert json.loads(_status(config, "--json"))["tickets"]["unassigned"] == 0


def test_an_unknown_status_is_refused_not_an_empty_list(tmp_path, sqlite_url, make_app):
    make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--status", "NEW",
                           "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "'NEW' is not one of 'new', 'open'" in done.stderr


def test_status_shows_what_waits_where(tmp_path, db_url, make_app):
    """`ticketd status`: mail waiting, quarantined, to send, tickets and timers, counted from the database."""
    from ingest.parse import dedupe_key
    from ticketd.store.inbox import store_raw

    app = make_app(db_url, extra="max_mime_depth: 2\n")
    config = write_config(tmp_path, db_url, extra="max_mime_depth: 2\n")

    def stored(raw: bytes) -> None:
        key, message_id = dedupe_key(raw)
        store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                  envelope_to=["support@example.com"])

    def mail(n: int) -> bytes:
        return (f"From: c{n}@example.org\r\nTo: support@example.com\r\nSubject: q{n}\r\n"
                f"Message-ID: <status-{n}@example.org>\r\n\r\nHelp {n}\r\n").encode()

    deep = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for depth in range(4):
        deep = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (depth, depth) + deep
                + b"\r\n--b%d--\r\n" % depth)
    stored(b"From: d@example.org\r\nTo: support@example.com\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n" + deep)
    for n in range(2):
        stored(mail(n))
    assert drain(app) == 3          # two tickets, one quarantined
    stored(mail(9))                  # and one not processed yet

    desk = json.loads(_status(config, "--json"))
    assert ISO_UTC.match(desk["at"])
    assert {k: desk["inbox"][k] for k in ("waiting", "processing", "quarantined", "done")} == {
        "waiting": 1, "processing": 0, "quarantined": 1, "done": 2}
    assert desk["inbox"]["oldest_waiting_seconds"] >= 0
    # Two acknowledgements, no worker ran: both pending.
    assert (desk["outbox"]["pending"], desk["outbox"]["sent"]) == (2, 0)
    assert desk["outbox"]["oldest_unsent_seconds"] >= 0
    assert desk["tickets"]["new"] == 2 and desk["tickets"]["closed"] == 0
    assert desk["tickets"]["unassigned"] == 2
    # MINIMAL_RULES: `new` has respond_within 4h, armed on each new ticket.
    assert (desk["timers"]["armed"], desk["timers"]["overdue"]) == (2, 0)
    assert ISO_UTC.match(desk["timers"]["next_due_at"])

    text = _status(config)
    assert "waiting 1" in text and "quarantined 1" in text and "pending 2" in text and "new 2" in text

    # The age of the oldest unsent mail stands with the pending mail, in the health line's words.
    from datetime import timedelta

    from ticketd.clock import utcnow
    from ticketd.store.tables import outbox

    with app.engine.begin() as conn:
        conn.execute(outbox.update().values(created_at=utcnow() - timedelta(seconds=7205)))
    [line] = [line for line in _status(config).splitlines() if line.startswith("outbox")]
    assert line == "outbox   pending 2 (oldest 2 h), sending 0, failed 0, sent 0"


def test_reading_commands_never_create_a_database(tmp_path):
    """Run without the daemon's --config, `tickets list` must not answer "no tickets" from a new empty file."""
    db = tmp_path / "elsewhere.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    for args in (("tickets", "list", "--json"), ("quarantine", "list", "--json"), ("outbox", "list", "--json")):
        done = run_cli(config, *args)
        assert done.returncode == 1, (args, done.stdout)
        assert f"no database at {db}" in done.stderr and "--config" in done.stderr
    assert not db.exists()
