"""`ticketd status` finds mail that does not flow: processing stuck, quarantine, mail not sent, no worker.

Each check runs on a real database with real rows in it (made by the real
receiver, processor and delivery, then dated back where a check looks at
age), and, where the exit status is asserted, a real `ticketd run`.
"""

from __future__ import annotations

import json
import os
import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.cli import run_cli
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive, running, submit, wait_until
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.waiting import eventually
from ticketd import health
from ticketd.clock import utcnow
from ticketd.store.tables import outbox, raw_mail


def _status(config) -> tuple[int, dict, str]:
    """The exit status (the same for the text and `--json`), the JSON and the text."""
    as_json, as_text = run_cli(config, "status", "--json"), run_cli(config, "status")
    assert as_json.returncode == as_text.returncode, (as_json, as_text)
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


def _problems(desk: dict, part: str) -> list[dict]:
    return [p for p in desk["problems"] if p["part"] == part]


def _stored(app, n: int) -> None:
    """A customer mail committed by the receiver's own store, not processed (no daemon runs)."""
    from ingest.parse import dedupe_key
    from ticketd.store.inbox import store_raw

    raw = (f"From: c{n}@example.org\r\nTo: support@example.com\r\nSubject: q{n}\r\n"
           f"Message-ID: <backlog-{n}@example.org>\r\n\r\nHelp {n}\r\n").encode()
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
              envelope_to=["support@example.com"])


def _set(app, table, values: dict, **where) -> None:
    """Date rows back: what a check looks at is how long mail has waited."""
    with app.engine.begin() as conn:
        conn.execute(update(table).where(*(table.c[k] == v for k, v in where.items())).values(**values))


DEEP = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
for _depth in range(4):
    DEEP = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (_depth, _depth) + DEEP
            + b"\r\n--b%d--\r\n" % _depth)


def test_mail_received_and_not_processed_for_minutes_is_critical(tmp_path, db_url, make_app):
    app = make_app(db_url)
    config = tmp_path / "ticketd.yaml"
    for n in range(3):
        _stored(app, n)

    _, desk, _ = _status(config)   # just received: the processor's next pass takes it
    assert _problems(desk, "processing") == []
    assert desk["checks"]["processing"]["state"] == "ok"

    _set(app, raw_mail, {"received_at": utcnow() - timedelta(minutes=12)}, message_id="backlog-0@example.org")
    code, desk, text = _status(config)
    assert code == health.CRITICAL
    [problem] = _problems(desk, "processing")
    assert problem["state"] == "critical"
    assert problem["text"] == ("processing is stuck: 3 mails received and not made into tickets, "
                               "the oldest for 12 min"), problem
    assert desk["checks"]["processing"] == {
        "state": "critical", "waiting": 3, "oldest_seconds": pytest.approx(720, abs=30),
        "stuck_after_seconds": health.PROCESSING_STUCK_SECONDS}
    assert problem["text"] in text.splitlines()[0]


def _stored_with(app, n: int, authentication_results: list[str]) -> None:
    """A mail as our MTA hands it on, its Authentication-Results on top (the first, the topmost)."""
    from ingest.parse import dedupe_key
    from ticketd.store.inbox import store_raw

    raw = ("".join(f"Authentication-Results: {value}\r\n" for value in authentication_results)
           + f"From: c{n}@example.org\r\nTo: support@example.com\r\nSubject: q{n}\r\n"
           f"Message-ID: <auth-{n}@example.org>\r\n\r\nHelp {n}\r\n").encode()
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)


def test_proof_asked_of_an_mta_whose_header_never_comes_is_a_warning(tmp_path, db_url, make_app):
    """agent_auth or customer_auth with an authserv-id our MTA does not write fails every check in silence."""
    app = make_app(db_url, extra="agent_auth:\n  require_authentication_results: true\n"
                                 "  trusted_authserv_ids: [MX.example.com]\n"
                                 "customer_auth:\n  require_authentication_results: true\n")
    config = tmp_path / "ticketd.yaml"
    for n in range(4):   # too few to tell: a new desk's first test mails
        _stored_with(app, n, [])
    _, desk, _ = _status(config)
    assert _problems(desk, "mail_auth") == [] and desk["checks"]["mail_auth"]["looked_at"] == 4

    _stored_with(app, 4, ["mx.google.com; dkim=pass header.d=example.org"])
    _stored_with(app, 5, ["relay.example.net; spf=pass", "mx.example.com; dkim=pass header.d=example.org"])
    _, desk, text = _status(config)   # no daemon runs: that problem is critical, this one a warning
    assert _problems(desk, "mail_auth") == [{"part": "mail_auth", "state": "warning", "text": (
        "none of the newest 6 mails carries Authentication-Results from mx.example.com on top, which agent_auth "
        "and customer_auth ask for (the topmost came from relay.example.net on 1, mx.google.com on 1, none on 4): "
        "every agent's mail is refused; a customer's mail that names a ticket only by its tag opens a new ticket. "
        "Have our MTA write it, or list the authserv-id it writes in agent_auth.trusted_authserv_ids")}]
    assert desk["mail_auth"]["topmost_from"] == {"relay.example.net": 1, "mx.google.com": 1}   # newest first
    assert ("auth     agent_auth and customer_auth: 0 of the newest 6 mails carry Authentication-Results from "
            "mx.example.com on top") in text.splitlines()

    _stored_with(app, 6, ["mx.example.com (our MTA); dkim=pass header.d=example.org"])
    _, desk, text = _status(config)
    assert _problems(desk, "mail_auth") == [] and desk["checks"]["mail_auth"]["from_trusted"] == 1, text


def test_without_proof_asked_status_reads_no_authentication_results(tmp_path, sqlite_url, make_app):
    app = make_app(sqlite_url)
    for n in range(6):
        _stored_with(app, n, [])
    _, desk, text = _status(tmp_path / "ticketd.yaml")
    assert desk["mail_auth"] is None and "mail_auth" not in desk["checks"]
    assert not any(line.startswith("auth ") for line in text.splitlines())


def test_mail_quarantined_lately_is_a_warning_naming_the_command(tmp_path, sqlite_url, make_app, sink, processes):
    app = make_app(sqlite_url, rules=NO_AGENTS, outbound_port=sink.port,
                   extra=outbound_yaml(sink.port) + "max_mime_depth: 2\n")
    config = tmp_path / "ticketd.yaml"
    receive(app, customer_mail())   # a ticket: not every mail is quarantined
    from ingest.parse import dedupe_key
    from ticketd.pipeline import drain
    from ticketd.store.inbox import store_raw

    raw = b"From: d@example.org\r\nTo: support@example.com\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n" + DEEP
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
    drain(app)
    processes.append(DaemonProcess(config).start())
    sink.wait_for(1, timeout=20)   # the ticket's acknowledgement

    code, desk, text = _status(config)
    assert code == health.WARNING, text
    assert desk["problems"] == [{"part": "quarantine", "state": "warning", "text": (
        "1 mail quarantined in the last 7 days, not made into a ticket: see `ticketd quarantine list`, dismiss "
        "what you have looked at with `ticketd quarantine dismiss`")}]
    assert desk["checks"]["quarantine"] == {"state": "warning", "recent": 1, "recent_days": 7}
    assert text.splitlines()[0] == f"health   WARNING: {desk['problems'][0]['text']}"

    # Quarantined a week and more ago: still listed and counted, no longer a warning even if nobody dismissed it.
    _set(app, raw_mail, {"processed_at": utcnow() - timedelta(days=8)}, state="quarantined")
    code, desk, text = _status(config)
    assert code == health.OK and desk["problems"] == [], text
    assert desk["inbox"]["quarantined"] == 1 and desk["checks"]["quarantine"]["recent"] == 0


def test_mail_failed_for_good_lately_is_a_warning(tmp_path, db_url, make_app, sink, processes):
    app = make_app(db_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config = tmp_path / "ticketd.yaml"
    sink.reject = True
    with running(app):
        submit(app, customer_mail())
        wait_until(lambda: [r for r in outbox_rows(app) if r["state"] == "failed"])
    processes.append(DaemonProcess(config).start())

    code, desk, text = _status(config)
    assert code == health.WARNING, text
    assert desk["problems"] == [{"part": "outbox", "state": "warning", "text": (
        "1 mail failed for good in the last 7 days: see `ticketd outbox list --state failed`, "
        "send it again with `ticketd outbox retry` or dismiss with `ticketd outbox dismiss`")}]
    assert desk["checks"]["outbox"]["failed_recent"] == 1 and desk["checks"]["outbox"]["state"] == "warning"

    _set(app, outbox, {"next_attempt_at": utcnow() - timedelta(days=8)}, state="failed")
    code, desk, text = _status(config)
    assert code == health.OK and desk["problems"] == [], text
    assert desk["outbox"]["failed"] == 1 and desk["checks"]["outbox"]["failed_recent"] == 0


def test_mail_not_sent_for_long_is_a_warning_and_critical_once_nothing_goes_out(tmp_path, db_url, make_app, sink):
    app = make_app(db_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port, retry_base=60))
    config = tmp_path / "ticketd.yaml"
    sink.fail_next(1)   # the smarthost defers the first mail: it waits a minute for its next try
    with running(app):
        submit(app, customer_mail(sender="late@example.org"))
        wait_until(lambda: (rows := outbox_rows(app)) and rows[0]["last_error"])
    [row] = outbox_rows(app)
    assert row["state"] == "pending"

    _, desk, _ = _status(config)   # a mail deferred once is not late yet
    assert _problems(desk, "outbox") == [] and desk["checks"]["outbox"]["late"] == 0

    _set(app, outbox, {"created_at": utcnow() - timedelta(minutes=40)}, id=row["id"])
    _, desk, _ = _status(config)
    [problem] = _problems(desk, "outbox")
    assert problem == {"part": "outbox", "state": "warning", "text": (
        "1 mail queued more than 30 min ago is not sent yet, the oldest for 40 min "
        "(last error: 451 4.3.0 try again later): see `ticketd outbox list`")}

    # Nothing went out for over an hour while it waits: the smarthost is down, the desk sends nothing.
    _set(app, outbox, {"created_at": utcnow() - timedelta(minutes=125)}, id=row["id"])
    _, desk, text = _status(config)
    [problem] = _problems(desk, "outbox")
    assert problem == {"part": "outbox", "state": "critical", "text": (
        "nothing sent for over 60 min while 1 mail waits, the oldest for 2 h 5 min "
        "(last error: 451 4.3.0 try again later): see `ticketd outbox list`")}
    assert desk["checks"]["outbox"]["state"] == "critical"

    # Other mail goes out meanwhile: only that one waits (its recipient's trouble), a warning again.
    with running(app):
        submit(app, customer_mail(sender="fine@example.org"))
        sink.wait_for(1)
        wait_until(lambda: len(rows := outbox_rows(app)) == 2 and rows[1]["state"] == "sent")
    _, desk, _ = _status(config)
    [problem] = _problems(desk, "outbox")
    assert problem["state"] == "warning" and "the oldest for 2 h 5 min" in problem["text"], problem


def test_a_backlog_going_out_is_not_called_stuck_because_its_mail_was_due_long_ago(tmp_path, db_url, make_app, sink):
    """The outbox's "nothing sent" reads when mail went, not when it was due: draining a backlog queued over an
    hour ago (a smarthost back after an outage) is mail going out, however old its rows are."""
    app = make_app(db_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port, retry_base=60))
    config = tmp_path / "ticketd.yaml"
    sink.fail_next(1)   # the first mail is deferred and waits; the second goes out
    with running(app):
        submit(app, customer_mail(sender="late@example.org"))
        wait_until(lambda: (rows := outbox_rows(app)) and rows[0]["last_error"])
        submit(app, customer_mail(sender="fine@example.org"))
        sink.wait_for(1)
        wait_until(lambda: len(rows := outbox_rows(app)) == 2 and rows[1]["state"] == "sent")
    waiting, sent = outbox_rows(app)
    assert (waiting["state"], sent["state"]) == ("pending", "sent")

    # Both were queued, and due, two hours ago; the one sent went just now, as a backlog drains.
    for row in (waiting, sent):
        _set(app, outbox, {"created_at": utcnow() - timedelta(hours=2), "next_attempt_at": utcnow() - timedelta(
            hours=2)}, id=row["id"])
    _, desk, text = _status(config)
    [problem] = _problems(desk, "outbox")
    assert problem["state"] == "warning" and "the oldest for 2 h" in problem["text"], problem
    assert desk["checks"]["outbox"]["last_sent_seconds_ago"] < 120, desk["checks"]["outbox"]

    # Sent over an hour ago, with mail waiting since: nothing goes out.
    _set(app, outbox, {"sent_at": utcnow() - timedelta(minutes=90)}, id=sent["id"])
    _, desk, text = _status(config)
    [problem] = _problems(desk, "outbox")
    assert problem["state"] == "critical" and problem["text"].startswith("nothing sent for over 60 min"), problem
    assert desk["checks"]["outbox"]["last_sent_seconds_ago"] == pytest.approx(90 * 60, abs=60)


def _started_ago(config, seconds: float) -> None:
    """Date the daemon's start back: the pid file `ticketd run` writes when it starts (ticketd/pidlock.py)."""
    import os
    import time

    from ticketd.pidlock import pid_path
    from ticketd.settings import load_settings

    then = time.time() - seconds
    os.utime(pid_path(load_settings(config, environ={}).data_dir), (then, then))


@pytest.mark.redis
def test_redis_mode_without_a_worker_is_a_warning_and_critical_once_jobs_wait(tmp_path, redis_server, sink,
                                                                             processes):
    smtp_port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", rules=NO_AGENTS, smtp_port=smtp_port,
                          extra=f"redis_url: {redis_server.url}\n" + outbound_yaml(sink.port))
    processes.append(DaemonProcess(config).start())

    # Just started: the workers started with it have not beaten yet.
    code, desk, text = _status(config)
    assert code == health.OK and desk["problems"] == [], text
    assert desk["checks"]["workers"]["state"] == "ok" and desk["queue"]["workers"] == 0
    assert desk["daemon"]["up_seconds"] < health.WORKER_START_GRACE_SECONDS
    assert "workers  none running" in text.splitlines()

    _started_ago(config, 120)
    code, desk, text = _status(config)
    assert code == health.WARNING, text
    assert desk["problems"] == [{"part": "workers", "state": "warning", "text": (
        "no `ticketd worker` running: mail to send would wait")}]

    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        client.send_message(customer_mail())
    code, desk, text = eventually(lambda: (s := _status(config))[0] == health.CRITICAL and s, timeout=15) \
        or _status(config)
    assert code == health.CRITICAL, text
    [problem] = desk["problems"]
    assert problem["part"] == "workers" and problem["state"] == "critical"
    assert problem["text"].startswith("no `ticketd worker` running, with "), problem
    assert problem["text"].endswith(" waiting in Redis: no mail is sent (tickets are still assigned, "
                                    "their agents' notices wait)"), problem

    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    sink.wait_for(1, timeout=20)
    code, desk, text = _status(config)
    assert code == health.OK and desk["queue"]["workers"] == 1, text
    assert [line for line in text.splitlines() if line.startswith("workers  1 alive (")], text

    assert worker.terminate() == 0   # a worker that stops says so: status need not wait for its beat to age
    code, desk, text = _status(config)
    assert code == health.WARNING and desk["queue"]["workers"] == 0, text
    assert [p["text"] for p in desk["problems"]] == [
        "no `ticketd worker` running: mail to send would wait"]

    # A worker that died without a word: its last beat ages in Redis, and status says how long ago it was.
    import redis

    from workers.broker_health import workers_key

    client = redis.Redis.from_url(redis_server.url)
    seconds, _ = client.time()
    client.zadd(workers_key("ticketd"), {"host:1:dead": seconds - 150})
    client.close()
    code, desk, text = _status(config)
    assert code == health.WARNING, text
    assert [p["text"] for p in desk["problems"]] == [
        "no `ticketd worker` seen for 2 min: mail to send would wait"]
    assert desk["checks"]["workers"]["last_beat_seconds_ago"] == pytest.approx(150, abs=10)
    assert "workers  none seen for 2 min" in text.splitlines()


def test_a_rules_file_with_errors_on_disk_is_a_warning_while_the_daemon_keeps_the_old_rules(
        tmp_path, sqlite_url, make_app, sink, processes):
    """The daemon refuses a broken edit and says so in its log only; the admin's check said OK."""
    make_app(sqlite_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config = tmp_path / "ticketd.yaml"
    daemon = DaemonProcess(config).start()
    processes.append(daemon)
    _saved_long_ago(tmp_path / "rules.yaml")
    code, desk, text = _status(config)
    assert code == health.OK and desk["rules"] == {"file": str(tmp_path / "rules.yaml"), "valid": True,
                                                   "errors": [], "in_force": True, "agents": 0,
                                                   "groups": 0}, text
    assert f"rules    {tmp_path / 'rules.yaml'}: valid\n" in text

    (tmp_path / "rules.yaml").write_text("agents: []\nroutes:\n  - if: {subject: '(unclosed'}\n")
    assert eventually(lambda: "keeping" in daemon.output(), timeout=20), daemon.output()
    code, desk, text = _status(config)
    assert code == health.WARNING, text
    [problem] = _problems(desk, "rules")
    assert problem["state"] == "warning" and "rules.yaml:" in problem["text"]
    assert "the running daemon keeps the rules it loaded before" in problem["text"]
    assert desk["checks"]["rules"] == {"state": "warning", "errors": len(desk["rules"]["errors"]), "in_force": None}
    assert desk["rules"]["valid"] is False and desk["rules"]["errors"]
    assert "error(s), not in force" in text


def _saved_long_ago(path) -> None:
    """Date a rules file's save back: status holds the daemon to a file only once it had time to look at it."""
    from ticketd.views import RULES_SETTLE_SECONDS

    then = path.stat().st_mtime - RULES_SETTLE_SECONDS - 1
    os.utime(path, (then, then))


def test_a_valid_rules_file_the_daemon_refused_is_a_warning_naming_why(tmp_path, sqlite_url, make_app, sink,
                                                                       processes):
    """A file without agents passes `rules check`, but the running daemon keeps its agents rather than
    unassign every open ticket: before, status said the file was valid and the health OK."""
    from tests.conftest import MINIMAL_RULES

    make_app(sqlite_url, rules=MINIMAL_RULES, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config, rules = tmp_path / "ticketd.yaml", tmp_path / "rules.yaml"
    daemon = DaemonProcess(config).start()
    processes.append(daemon)
    rules.write_text("agents: []\nroutes:\n  - {name: all, then: {priority: high}}\n")
    assert eventually(lambda: "names no agents" in daemon.output(), timeout=20), daemon.output()
    _saved_long_ago(rules)
    code, desk, text = _status(config)
    assert code == health.WARNING, text
    [problem] = _problems(desk, "rules")
    assert problem["text"] == (f"{rules} as saved is not in force: the running daemon keeps the rules it loaded "
                               "before (it names no agents, and the daemon's own would lose every open ticket at "
                               "once: restart ticketd to run the desk without agents); its log says why")
    assert desk["rules"]["valid"] is True and desk["rules"]["in_force"] is False
    assert desk["checks"]["rules"] == {"state": "warning", "errors": 0, "in_force": False}
    assert f"rules    {rules}: valid, NOT IN FORCE" in text

    rules.write_text(MINIMAL_RULES.replace("Alice", "Alice Liddell"))   # taken: the status is OK again
    assert eventually(lambda: daemon.output().count("rules reloaded") >= 1, timeout=20), daemon.output()
    _saved_long_ago(rules)
    code, desk, text = _status(config)
    assert code == health.OK and desk["rules"]["in_force"] is True, text


def test_a_disk_without_room_for_mail_at_the_size_limit_is_a_warning_then_critical(tmp_path, db_url, make_app):
    """The file system under data_dir (and SQLite's database) against smtp.max_message_bytes: the size limit
    is what the test turns, the disk's free space being whatever it is."""
    make_app(db_url)
    config = tmp_path / "ticketd.yaml"
    fs = os.statvfs(tmp_path)
    free = fs.f_bavail * fs.f_frsize
    holds = ["data_dir", "database"] if db_url.startswith("sqlite") else ["data_dir"]
    where = f"{tmp_path / 'var'} ({', '.join(holds)})"

    def status_with(limit: int) -> tuple[dict, str]:
        write_config(tmp_path, db_url, extra=f"smtp:\n  listen: 127.0.0.1:{free_port()}\n"
                                             f"  max_message_bytes: {limit}\n")
        _, desk, text = _status(config)
        return desk, text

    desk, text = status_with(1)
    assert _problems(desk, "disk") == [] and desk["checks"]["disk"] == {"state": "ok",
                                                                        "low_mails": health.DISK_LOW_MAILS}
    [disk] = desk["disks"]
    assert disk["path"] == str(tmp_path / "var") and disk["holds"] == holds and disk["read_only"] is False
    assert disk["free_bytes"] == pytest.approx(free, rel=0.01) and disk["total_bytes"] >= disk["free_bytes"]
    assert f"disk     {where}: " in text and " free of " in text

    desk, _ = status_with(free // 4)
    [problem] = _problems(desk, "disk")
    assert problem["state"] == "warning"
    assert f"free on {where}: room for fewer than {health.DISK_LOW_MAILS} mails of smtp.max_message_bytes" \
        in problem["text"]
    assert "once it is full, mail with files waits unprocessed" in problem["text"]
    assert ("the database cannot grow, so mail is refused with 451" in problem["text"]) == ("database" in holds)

    desk, _ = status_with(free * 4)
    [problem] = _problems(desk, "disk")
    assert problem["state"] == "critical" and "less than one mail of smtp.max_message_bytes" in problem["text"]


def test_a_read_only_or_unreadable_file_system_is_told():
    """The decision alone: statvfs's ST_RDONLY, or an error where status looked."""
    desk = {"daemon": {"running": True, "pid": 1}, "queue": {"backend": "memory"}, "imap": [],
            "max_message_bytes": 100,
            "disks": [{"path": "/srv/var", "holds": ["data_dir"], "free_bytes": 10**9, "total_bytes": 10**10,
                       "read_only": True},
                      {"path": "/srv/db", "holds": ["database"], "error": "Permission denied"}]}
    found = health.assess(desk)
    assert found.state == health.CRITICAL
    assert [(p["state"], p["text"]) for p in found.problems] == [
        ("critical", "/srv/var (data_dir) is on a read-only file system: mail with files waits unprocessed"),
        ("unknown", "cannot look at /srv/db (database): Permission denied")]
