"""`ticketd outbox list / retry`: mail refused by the smarthost, listed, sent again by the running daemon."""

from __future__ import annotations

import json
import re
import smtplib
from datetime import timedelta

import pytest

from tests.cli import cli_ok, run_cli
from tests.conftest import ONE_AGENT, free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive, running, submit, ticket_events, wait_until
from tests.test_outbound import NO_AGENTS, outbound_yaml
from ticketd.clock import utcnow

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LISTED = {"id", "ticket_id", "template", "recipient", "message_id", "automatic", "state", "attempts",
          "last_error", "created_at", "next_attempt_at", "sent_at"}


def _listed(config, *args) -> list[dict]:
    return json.loads(cli_ok(config, "outbox", "list", "--json", *args))


def _app(make_app, db_url, sink, **kw):
    return make_app(db_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port, **kw))


def test_a_refused_mail_is_listed_retried_and_sent_by_the_running_daemon_with_its_message_id(
        tmp_path, make_app, db_url, sink):
    app = _app(make_app, db_url, sink)
    config = tmp_path / "ticketd.yaml"
    sink.reject = True
    with running(app):
        submit(app, customer_mail())
        wait_until(lambda: [r for r in outbox_rows(app) if r["state"] == "failed"])
    [row] = outbox_rows(app)

    [shown] = _listed(config)
    assert LISTED <= set(shown)
    assert {k: shown[k] for k in ("id", "ticket_id", "template", "recipient", "message_id", "state", "attempts")} == {
        "id": row["id"], "ticket_id": row["ticket_id"], "template": "requester/ticket_opened",
        "recipient": "cust@example.org", "message_id": row["message_id"], "state": "failed", "attempts": 1}
    assert shown["last_error"].startswith("550")
    assert ISO_UTC.match(shown["created_at"]) and ISO_UTC.match(shown["next_attempt_at"])
    assert shown["sent_at"] is None
    assert _listed(config, "--state", "sent") == []
    text = cli_ok(config, "outbox", "list")
    assert f"[#{row['ticket_id']}]" in text and "failed" in text and "550 5.1.1" in text

    sink.reject = False
    with running(app):
        said = cli_ok(config, "outbox", "retry", str(row["id"]))
        [requeued] = outbox_rows(app)   # queued anew: a new id, at the end of its line
        assert requeued["id"] > row["id"]
        assert f"outbox {row['id']}:" in said and f"pending again as outbox {requeued['id']}" in said, said
        [got] = sink.wait_for(1, timeout=20)
        wait_until(lambda: outbox_rows(app)[0]["state"] == "sent")
        assert len(sink.settle(0.5)) == 1
    # The same mail as the first try: its Message-ID, so replies thread into the ticket.
    assert got.rcpt_tos == ["cust@example.org"]
    assert got.message["Message-ID"] == f"<{row['message_id']}>"
    [after] = outbox_rows(app)
    assert (after["state"], after["attempts"], after["message_id"], bytes(after["raw"])) == (
        "sent", 1, row["message_id"], bytes(row["raw"]))
    [retried] = ticket_events(app, row["ticket_id"], "delivery_retried")
    assert retried["actor"] == "admin:cli" and retried["to_value"] == "cust@example.org"
    assert _listed(config) == []
    assert [r["state"] for r in _listed(config, "--state", "sent")] == ["sent"]

    # A row that is not failed is refused, and left as it is; the old id is gone, and says where to look.
    again = run_cli(config, "outbox", "retry", str(after["id"]))
    assert again.returncode == 1 and f"outbox {after['id']} is sent, not failed" in again.stderr
    assert outbox_rows(app) == [after]
    for gone in (row["id"], 999):
        missing = run_cli(config, "outbox", "retry", str(gone))
        assert missing.returncode == 1 and f"no outbox row {gone} (a row sent again has a new ID" in missing.stderr
    assert len(ticket_events(app, row["ticket_id"], "delivery_retried")) == 1


def test_all_failed_resets_attempts_of_every_failed_row_and_nothing_else(tmp_path, make_app, sqlite_url, sink):
    app = _app(make_app, sqlite_url, sink, max_attempts=2)
    config = tmp_path / "ticketd.yaml"
    # a gives up after two 451s; then b is refused with 550 and c is delivered.
    receive(app, customer_mail(subject="Case a", sender="a@example.org"))
    sink.fail_next(2)
    with running(app):
        wait_until(lambda: outbox_rows(app)[0]["state"] == "failed")
    receive(app, *(customer_mail(subject=f"Case {who}", sender=f"{who}@example.org") for who in "bc"))
    sink.reject = {"b@example.org"}
    with running(app):
        wait_until(lambda: [r["state"] for r in outbox_rows(app)[1:]] == ["failed", "sent"])
    a, b, c = outbox_rows(app)
    assert a["attempts"] == 2 and a["last_error"].startswith("gave up after 2 attempts")
    assert b["attempts"] == 1 and b["last_error"].startswith("550")

    listed = _listed(config)
    assert [r["id"] for r in listed] == [b["id"], a["id"]]   # newest first, the sent one left out
    assert [r["id"] for r in _listed(config, "--state", "failed", "--state", "sent")] == [
        c["id"], b["id"], a["id"]]

    before = utcnow()
    said = cli_ok(config, "outbox", "retry", "--all-failed")
    assert f"outbox {a['id']}:" in said and f"outbox {b['id']}:" in said
    new_c, new_a, new_b = outbox_rows(app)   # queued anew, in the order they were first queued
    assert new_c == c and new_b["id"] > new_a["id"] > c["id"]
    for old, new in ((a, new_a), (b, new_b)):
        assert (new["state"], new["attempts"], new["claimed_at"]) == ("pending", 0, None)
        assert before - timedelta(seconds=1) <= new["next_attempt_at"] <= utcnow()
        assert new["message_id"] == old["message_id"] and bytes(new["raw"]) == bytes(old["raw"])
        assert new["last_error"] == old["last_error"]
    assert {r["state"] for r in _listed(config)} == {"pending"}
    assert "no failed mail" in cli_ok(config, "outbox", "retry", "--all-failed")

    # Attempts start again from zero: with max_attempts 2, whichever of the
    # two gets this 451 would fail for good had its attempts not been reset.
    sink.reject = False
    sink.fail_next(1)
    with running(app):
        wait_until(lambda: all(r["state"] == "sent" for r in outbox_rows(app)), timeout=20)
    delivered = {m.rcpt_tos[0]: m.message["Message-ID"] for m in sink.settle(0.5)}
    assert delivered == {f"{who}@example.org": f"<{row['message_id']}>" for who, row in zip("abc", (a, b, c))}


def test_retry_needs_one_id_or_all_failed(tmp_path, make_app, sqlite_url, sink):
    _app(make_app, sqlite_url, sink)
    config = tmp_path / "ticketd.yaml"
    assert run_cli(config, "outbox", "retry").returncode == 2
    assert run_cli(config, "outbox", "retry", "1", "--all-failed").returncode == 2
    assert run_cli(config, "outbox", "list", "--state", "lost").returncode == 2


def test_retry_wakes_the_running_daemon_which_sends_at_once(tmp_path, sqlite_url, sink):
    # A sweep every ten minutes: only the wake-up (SIGUSR1) can send the row within the test.
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=NO_AGENTS, smtp_port=port,
                          extra=outbound_yaml(sink.port) + "sweep_seconds: 600\n")
    daemon = DaemonProcess(config).start()
    try:
        sink.reject = True
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(customer_mail())
        [row] = wait_until(lambda: _listed(config, "--state", "failed"), timeout=20)
        sink.reject = False
        said = cli_ok(config, "outbox", "retry", str(row["id"]))
        assert f"the running `ticketd run` (pid {daemon.proc.pid}) sends it now" in said
        [got] = sink.wait_for(1, timeout=15)
        assert got.message["Message-ID"] == f"<{row['message_id']}>"
        assert daemon.proc.poll() is None          # SIGUSR1 wakes it, never stops it
    finally:
        assert daemon.terminate() == 0


def test_retry_without_a_daemon_says_when_the_mail_goes(tmp_path, make_app, sqlite_url, sink):
    app = _app(make_app, sqlite_url, sink)
    sink.reject = True
    with running(app):
        submit(app, customer_mail())
        [row] = wait_until(lambda: [r for r in outbox_rows(app) if r["state"] == "failed"])
    said = cli_ok(tmp_path / "ticketd.yaml", "outbox", "retry", str(row["id"]))
    assert "no `ticketd run` holds" in said and "at its next outbox sweep" in said


@pytest.mark.redis
def test_redis_mode_the_daemons_sweep_enqueues_the_retried_row_for_a_worker(tmp_path, sqlite_url, sink):
    from tests.test_outbound_processes import RedisServer

    redis = RedisServer(free_port()).start()
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=NO_AGENTS, smtp_port=port,
                          extra=outbound_yaml(sink.port) + f"redis_url: {redis.url}\n")
    processes = [DaemonProcess(config, "worker"), DaemonProcess(config, "run")]
    try:
        for proc in processes:
            proc.start()
        sink.reject = True
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(customer_mail())
        [row] = wait_until(lambda: [r for r in _listed(config, "--state", "failed")], timeout=20)
        sink.reject = False
        said = cli_ok(config, "outbox", "retry", str(row["id"]))
        assert f"the running `ticketd run` (pid {processes[1].proc.pid}) hands it to a `ticketd worker` now" in said
        [got] = sink.wait_for(1, timeout=20)
        assert got.message["Message-ID"] == f"<{row['message_id']}>"
        [sent] = wait_until(lambda: _listed(config, "--state", "sent"))
        assert sent["message_id"] == row["message_id"] and sent["id"] > row["id"]   # queued anew

        # With no worker left, the same command does not say the mail goes now.
        sink.reject = True
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(customer_mail(subject="Second case", sender="other@example.org"))
        [row] = wait_until(lambda: [r for r in _listed(config, "--state", "failed")], timeout=20)
        assert processes[0].terminate() == 0   # a worker that stops takes its beat off at once
        sink.reject = False
        said = cli_ok(config, "outbox", "retry", str(row["id"]))
        assert (f"the running `ticketd run` (pid {processes[1].proc.pid}) queues it now, but no `ticketd worker` "
                "is running: it waits until one starts") in said, said
        processes.append(DaemonProcess(config, "worker").start())
        assert len(sink.wait_for(2, timeout=20)) == 2
    finally:
        for proc in reversed(processes):
            proc.stop()
        redis.stop()


def test_all_failed_leaves_the_reports_of_the_failures_it_retries(tmp_path, make_app, sqlite_url, sink):
    """A failure report says "the customer has not seen it": stale the moment that mail is sent again."""
    from ticketd.assignment import assign

    app = make_app(sqlite_url, rules=ONE_AGENT, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config = tmp_path / "ticketd.yaml"
    receive(app, customer_mail())
    [ack] = outbox_rows(app)
    assert assign(app, ack["ticket_id"]) == "alice@example.com"
    sink.reject = True   # the smarthost refuses everything: the ack, the assignment, the report of the ack
    with running(app):
        wait_until(lambda: len(outbox_rows(app)) == 3 and all(r["state"] == "failed" for r in outbox_rows(app)))
    templates = {r["template"]: r for r in outbox_rows(app)}
    assert set(templates) == {"requester/ticket_opened", "agent/ticket_assigned", "agent/delivery_failed"}

    said = cli_ok(config, "outbox", "retry", "--all-failed")
    assert "1 failed agent/delivery_failed mail left failed: they report the failures just retried" in said
    states = {r["template"]: r["state"] for r in outbox_rows(app)}
    assert states == {"requester/ticket_opened": "pending", "agent/ticket_assigned": "pending",
                      "agent/delivery_failed": "failed"}
    # Again, with only the report failed: one answer, not "left failed" and then "no failed mail".
    assert cli_ok(config, "outbox", "retry", "--all-failed") == (
        "no failed mail to retry but 1 failed agent/delivery_failed mail, which --all-failed leaves failed "
        "(retry one by its ID to send it, or `ticketd outbox dismiss` it)\n")
    report = templates["agent/delivery_failed"]["id"]
    assert f"outbox {report}: agent/delivery_failed" in cli_ok(config, "outbox", "retry", str(report))


def test_empty_lists_say_so(tmp_path, make_app, sqlite_url):
    """As `tickets list` does ("no tickets"): an empty output reads as a command that did nothing."""
    make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    assert cli_ok(config, "quarantine", "list") == "no quarantined mail waits to be looked at\n"
    assert cli_ok(config, "quarantine", "list", "--state", "dismissed") == "no dismissed mail\n"
    assert cli_ok(config, "quarantine", "list", "--all") == "no mail in quarantine\n"
    assert cli_ok(config, "outbox", "list") == "no mail to send\n"
    assert cli_ok(config, "outbox", "list", "--state", "failed") == "no failed mail\n"
    assert cli_ok(config, "outbox", "list", "--all") == "nothing in the outbox\n"
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []


def test_an_id_that_is_no_number_is_told_so_as_a_ticket_number_is(tmp_path, make_app, sqlite_url):
    make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    for command, words in ((("outbox", "retry", "abc"), "`ticketd outbox list`"),
                           (("outbox", "dismiss", "1", "x1"), "`ticketd outbox list`"),
                           (("quarantine", "retry", "abc"), "`ticketd quarantine list`")):
        refused = run_cli(config, *command)
        assert refused.returncode == 2, refused.stderr
        assert f"'{command[-1]}' is not an ID; write the number {words} shows, e.g. 12" in refused.stderr
        assert "integer range" not in refused.stderr
    days = run_cli(config, "report", "--days", "abc")
    assert days.returncode == 2 and "'abc' is not a whole number" in days.stderr
    assert "0 is not in the range" in run_cli(config, "outbox", "retry", "0").stderr
