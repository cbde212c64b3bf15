"""`ticketd quarantine dismiss` / `ticketd outbox dismiss`: what the admin has looked at stops warning, and stays.

Quarantined mail and mail failed for good keep `ticketd status` at WARNING
for a week. An admin who has looked at one (a mail no change will ever
process, a report that stays failed on purpose) dismisses it: the row is
kept whole with who dismissed it, when and why, listed on asking, retried
as before, and status counts only what nobody has dismissed.
"""

from __future__ import annotations

import getpass
import json

from sqlalchemy import select

from tests.cli import cli_ok, run_cli
from tests.conftest import ONE_AGENT
from tests.sink import customer_mail, outbox_rows, receive, running, ticket_events, wait_until
from tests.test_outbound import outbound_yaml
from tests.test_status_checks import DEEP
from ticketd.store.tables import raw_mail

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _status(config) -> dict:
    return json.loads(run_cli(config, "status", "--json").stdout)


def _quarantine(app) -> int:
    """A mail nested deeper than max_mime_depth: processing quarantines it, and will each time."""
    from ingest.parse import dedupe_key
    from ticketd.pipeline import drain
    from ticketd.store.inbox import store_raw

    raw = b"From: d@example.org\r\nTo: support@example.com\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n" + DEEP
    key, message_id = dedupe_key(raw)
    raw_id = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id).raw_id
    drain(app)
    return raw_id


def _raw_row(app, raw_id: int) -> dict:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(raw_mail).where(raw_mail.c.id == raw_id)).mappings().one())


def test_a_dismissed_quarantined_mail_is_kept_listed_on_asking_and_no_longer_warns(tmp_path, make_app, db_url):
    app = make_app(db_url, extra="max_mime_depth: 2\n")
    config = tmp_path / "ticketd.yaml"
    raw_id = _quarantine(app)
    before = _raw_row(app, raw_id)
    assert before["state"] == "quarantined"
    assert _status(config)["checks"]["quarantine"]["recent"] == 1

    said = cli_ok(config, "quarantine", "dismiss", str(raw_id), "--reason", "nested on purpose, a test mail")
    assert f"mail {raw_id} dismissed" in said, said

    desk = _status(config)
    assert [p for p in desk["problems"] if p["part"] == "quarantine"] == []
    assert desk["checks"]["quarantine"]["recent"] == 0 and desk["checks"]["quarantine"]["state"] == "ok"
    assert desk["inbox"]["quarantined"] == 1   # still there, still counted
    kept = _raw_row(app, raw_id)
    assert (kept["state"], bytes(kept["raw"]), kept["reason"]) == ("quarantined", bytes(before["raw"]),
                                                                   before["reason"])
    assert kept["dismissed_by"] == getpass.getuser() and kept["dismiss_reason"] == "nested on purpose, a test mail"

    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    assert cli_ok(config, "quarantine", "list") == "no quarantined mail waits to be looked at\n"
    for args in (("--state", "dismissed"), ("--all",)):
        [row] = json.loads(cli_ok(config, "quarantine", "list", "--json", *args))
        assert row["id"] == raw_id and row["dismissed_by"] == getpass.getuser(), row
        assert row["dismiss_reason"] == "nested on purpose, a test mail" and row["dismissed_at"].endswith("Z")
        assert {"id", "received_at", "reason", "message_id", "size"} <= set(row)   # PRODUCT.md's fields
    assert "dismissed by" in cli_ok(config, "quarantine", "list", "--all")

    # Dismissing again changes nothing; a mail not in quarantine is refused.
    again = cli_ok(config, "quarantine", "dismiss", str(raw_id))
    assert "already dismissed" in again and _raw_row(app, raw_id)["dismissed_at"] == kept["dismissed_at"]
    missing = run_cli(config, "quarantine", "dismiss", "999")
    assert missing.returncode == 1 and "mail 999 is not in quarantine" in missing.stderr

    # A dismissed mail can still be retried; failing again, it is news again.
    retried = run_cli(config, "quarantine", "retry", str(raw_id))
    assert retried.returncode == 1 and "failed again and stays in quarantine" in retried.stderr, retried
    assert _raw_row(app, raw_id)["dismissed_at"] is None
    assert _status(config)["checks"]["quarantine"]["recent"] == 1
    assert [r["id"] for r in json.loads(cli_ok(config, "quarantine", "list", "--json"))] == [raw_id]


def test_quarantine_dismiss_all_dismisses_every_one_not_yet_dismissed(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url, extra="max_mime_depth: 2\n")
    config = tmp_path / "ticketd.yaml"
    raw_id = _quarantine(app)
    assert run_cli(config, "quarantine", "dismiss").returncode == 2                 # an ID or --all
    assert run_cli(config, "quarantine", "dismiss", str(raw_id), "--all").returncode == 2

    assert f"mail {raw_id} dismissed" in cli_ok(config, "quarantine", "dismiss", "--all")
    assert "nothing to dismiss" in cli_ok(config, "quarantine", "dismiss", "--all")
    assert _raw_row(app, raw_id)["dismissed_at"] is not None


def test_a_failure_report_left_failed_on_purpose_is_dismissed_and_status_is_ok_again(tmp_path, make_app, db_url,
                                                                                     sink):
    from ticketd.assignment import assign

    app = make_app(db_url, rules=ONE_AGENT, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config = tmp_path / "ticketd.yaml"
    receive(app, customer_mail())
    [ack] = outbox_rows(app)
    assert assign(app, ack["ticket_id"]) == "alice@example.com"
    sink.reject = True
    with running(app):
        wait_until(lambda: len(outbox_rows(app)) == 3 and all(r["state"] == "failed" for r in outbox_rows(app)))
    sink.reject = False
    cli_ok(config, "outbox", "retry", "--all-failed")   # the report of the failure stays failed, on purpose
    with running(app):
        wait_until(lambda: sorted(r["state"] for r in outbox_rows(app)) == ["failed", "sent", "sent"])
    [report] = [r for r in outbox_rows(app) if r["state"] == "failed"]
    assert report["template"] == "agent/delivery_failed"
    assert _status(config)["checks"]["outbox"]["failed_recent"] == 1

    pending = [r for r in outbox_rows(app) if r["state"] == "sent"][0]
    refused = run_cli(config, "outbox", "dismiss", str(pending["id"]))
    assert refused.returncode == 1 and f"outbox {pending['id']} is sent, not failed" in refused.stderr

    said = cli_ok(config, "outbox", "dismiss", str(report["id"]), "--reason", "the ack went out after all")
    assert f"outbox {report['id']}: agent/delivery_failed to alice@example.com" in said and "dismissed" in said

    desk = _status(config)
    assert [p for p in desk["problems"] if p["part"] == "outbox"] == []
    assert desk["checks"]["outbox"]["failed_recent"] == 0 and desk["outbox"]["failed"] == 1
    [kept] = [r for r in outbox_rows(app) if r["id"] == report["id"]]
    assert kept["state"] == "failed" and bytes(kept["raw"]) == bytes(report["raw"])
    assert kept["dismissed_by"] == getpass.getuser() and kept["dismiss_reason"] == "the ack went out after all"
    [event] = ticket_events(app, report["ticket_id"], "delivery_dismissed")
    assert event["actor"] == "admin:cli" and event["to_value"] == "alice@example.com"
    assert "the ack went out after all" in event["reason"]

    assert json.loads(cli_ok(config, "outbox", "list", "--json")) == []
    assert json.loads(cli_ok(config, "outbox", "list", "--json", "--state", "failed")) == []
    [listed] = json.loads(cli_ok(config, "outbox", "list", "--json", "--state", "dismissed"))
    assert listed["id"] == report["id"] and listed["dismissed_by"] == getpass.getuser()
    assert report["id"] in [r["id"] for r in json.loads(cli_ok(config, "outbox", "list", "--json", "--all"))]
    assert "dismissed" in cli_ok(config, "outbox", "list", "--state", "dismissed")

    # --all-failed leaves a dismissed row alone; its ID sends it again all the same.
    assert "no failed mail" in cli_ok(config, "outbox", "retry", "--all-failed")
    assert f"outbox {report['id']}: agent/delivery_failed" in cli_ok(config, "outbox", "retry", str(report["id"]))
