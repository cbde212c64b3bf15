"""`ticketd status` exits as a Nagios plugin does: 0 healthy, 1 warning, 2 critical, 3 could not tell.

Monitoring (a Nagios or Icinga check, systemd ExecCondition, cron `|| alert`)
reads the exit status, so each fault is a real one: a daemon stopped, a
private Redis stopped, a private Dovecot stopped, a database nobody
listens on, settings that do not load.
"""

from __future__ import annotations

import json

import pytest

from tests.cli import run_cli
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.dovecot import dovecot, dovecot_factory  # noqa: F401  (fixtures)
from tests.waiting import eventually
from ticketd.health import CRITICAL, OK, UNKNOWN, WARNING, assess

EXPECTED_PARTS = {"at", "daemon", "queue", "imap", "inbox", "outbox", "tickets", "timers"}


def _status(config) -> tuple[int, dict, str]:
    """The exit status (the same for `status` and `status --json`), the JSON and the text."""
    as_json, as_text = run_cli(config, "status", "--json"), run_cli(config, "status")
    assert as_json.returncode == as_text.returncode, (as_json, as_text)
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


def _exits(config, code: int, timeout: float = 20):
    """`_status` once it exits `code` (a poller or a reconnect may take a moment), else the last one seen."""
    return eventually(lambda: (s := _status(config))[0] == code and s, timeout=timeout, step=0.3) or _status(config)


def test_a_stopped_daemon_is_critical_and_a_running_one_healthy(tmp_path, processes):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")

    code, desk, text = _status(config)   # never started: no database yet (`ticketd run` creates it)
    assert code == 2, text
    assert [(p["part"], p["state"]) for p in desk["problems"]] == [("database", "critical")]
    assert text.splitlines()[0].startswith(f"health   CRITICAL: no database at {tmp_path}/t.db: ")

    daemon = DaemonProcess(config).start()
    processes.append(daemon)
    code, desk, text = _status(config)
    assert code == 0, text
    assert (desk["healthy"], desk["health"], desk["problems"]) == (True, "ok", [])
    assert desk["daemon"]["running"] is True and EXPECTED_PARTS <= desk.keys()
    assert text.splitlines()[0] == "health   OK"

    daemon.kill()
    code, desk, text = _status(config)
    assert code == 2, text
    assert EXPECTED_PARTS <= desk.keys()   # the summary is added; nothing is taken away
    assert (desk["healthy"], desk["health"]) == (False, "critical")
    assert desk["problems"] == [{"part": "daemon", "state": "critical", "text": "the daemon is not running"}]
    assert text.splitlines()[0] == "health   CRITICAL: the daemon is not running"
    assert "daemon   not running" in text.splitlines()


@pytest.mark.redis
def test_a_redis_that_does_not_answer_is_critical_until_it_is_back(tmp_path, redis_server, processes):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"redis_url: {redis_server.url}\n")
    processes.append(DaemonProcess(config).start())
    processes.append(DaemonProcess(config, "worker").start())   # without one, Redis mode sends nothing
    code, desk, text = _status(config)
    assert code == 0 and desk["healthy"] is True, text

    redis_server.stop()
    code, desk, text = _status(config)
    assert code == 2, text
    [problem] = desk["problems"]
    assert (problem["part"], problem["state"]) == ("queue", "critical")
    assert f"Redis at {redis_server.url}" in problem["text"] and "Connection refused" in problem["text"], problem
    assert desk["queue"]["reachable"] is False
    assert text.splitlines()[0] == f"health   CRITICAL: {problem['text']}"

    redis_server.start()
    # The worker beats again once it is back (every 10 s): Redis came back empty, without its beats.
    code, desk, text = _exits(config, OK, timeout=30)
    assert code == 0 and desk["problems"] == [], text


@pytest.mark.dovecot
def test_a_failing_mailbox_is_a_warning_and_a_stopped_daemon_outweighs_it(tmp_path, dovecot, processes):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=dovecot.settings_yaml(poll_seconds=0.2))
    daemon = DaemonProcess(config).start()
    processes.append(daemon)
    code, desk, text = _exits(config, OK)
    assert code == 0 and desk["imap"][0]["state"] == "ok", text
    mailbox = desk["imap"][0]["mailbox"]

    dovecot.stop()
    # The first failure may be the open IDLE connection reset; the polls after it are refused.
    # (status --json and status run one after the other: both must have seen it.)
    refused = eventually(lambda: (s := _status(config))[0] == WARNING
                         and "Connection refused" in json.dumps(s[1]) and "Connection refused" in s[2] and s,
                         timeout=20, step=0.3)
    code, desk, text = refused or _status(config)
    assert code == 1, text
    assert (desk["healthy"], desk["health"]) == (False, "warning")
    [problem] = desk["problems"]
    assert (problem["part"], problem["state"]) == ("imap", "warning")
    assert mailbox in problem["text"] and "Connection refused" in problem["text"], problem
    assert dovecot.password not in json.dumps(desk) + text
    assert text.splitlines()[0].startswith(f"health   WARNING: mailbox {mailbox} failing since ")

    daemon.kill()
    code, desk, text = _status(config)
    assert code == 2 and desk["health"] == "critical", text
    assert [(p["part"], p["state"]) for p in desk["problems"]] == [("daemon", "critical"), ("imap", "warning")]
    assert text.splitlines()[0].startswith("health   CRITICAL: the daemon is not running; mailbox ")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_database_nobody_listens_on_is_critical_with_its_one_line_error(tmp_path, as_json):
    config = write_config(tmp_path, f"postgresql+psycopg://ticketd:s3cret@127.0.0.1:{free_port()}/desk")

    done = run_cli(config, "status", *(["--json"] if as_json else []))

    assert done.returncode == 2, done
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "cannot use the database postgresql+psycopg://ticketd:***@127.0.0.1:" in error
    assert "Traceback" not in done.stderr and "s3cret" not in done.stdout + done.stderr
    said = error.removeprefix("Error: ")
    if as_json:
        desk = json.loads(done.stdout)
        assert (desk["healthy"], desk["health"]) == (False, "critical")
        assert desk["problems"] == [{"part": "database", "state": "critical", "text": said}]
    else:
        assert done.stdout == f"health   CRITICAL: {said}\n"


@pytest.mark.parametrize("args, extra, said", [
    (("status",), "log_level: LOUD\n", "log_level must be one of"),     # settings it cannot load
    (("status", "--jsn"), "", "No such option '--jsn'"),               # a check command mistyped
])
def test_what_keeps_status_from_looking_is_unknown_not_critical(tmp_path, args, extra, said):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=extra)

    done = run_cli(config, *args)

    assert done.returncode == 3, done
    assert said in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", ["invalid", "not yaml", "missing", "mistyped option"])
def test_status_json_is_one_json_object_even_when_it_cannot_look(tmp_path, case):
    """Monitoring that parses `status --json` gets the verdict it can parse, naming what kept status from looking."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra="log_level: LOUD\n" if case == "invalid"
                          else "")
    if case == "not yaml":
        config.write_text("database_url: [unclosed\n")
    args = ["status", "--json"] + (["--bogus"] if case == "mistyped option" else [])
    if case == "missing":
        config = tmp_path / "nowhere.yaml"

    as_json, as_text = run_cli(config, *args), run_cli(config, *[a for a in args if a != "--json"])

    for done in (as_json, as_text):
        assert done.returncode == UNKNOWN, done
        assert "Traceback" not in done.stderr, done.stderr
    desk = json.loads(as_json.stdout)   # one object: loads refuses anything after it
    assert (desk["healthy"], desk["health"]) == (False, "unknown"), desk
    [problem] = desk["problems"]
    part = "usage" if case == "mistyped option" else "settings"
    assert (problem["part"], problem["state"]) == (part, "unknown"), problem
    said = {"invalid": "log_level must be one of", "not yaml": "not valid YAML", "missing": "nowhere.yaml",
            "mistyped option": "No such option '--bogus'"}[case]
    assert said in problem["text"] and "\n" not in problem["text"], problem
    assert desk["checks"] == {part: {"state": "unknown"}}
    assert as_text.stdout.splitlines()[0] == f"health   UNKNOWN: {problem['text']}", as_text.stdout


def _desk(daemon: dict | None = None, queue: dict | None = None, imap: list | None = None) -> dict:
    return {"daemon": daemon or {"running": True, "pid": 7}, "queue": queue or {"backend": "in-process"},
            "imap": imap or []}


FAILING_BOX = {"mailbox": "support@imap:993/INBOX", "state": "failing", "error": "login refused",
               "failing_since": "2026-01-02T03:04:05Z", "last_ok_at": None, "failures": 3}


@pytest.mark.parametrize("desk, verdict, parts", [
    (_desk(), OK, []),
    (_desk(imap=[{**FAILING_BOX, "state": "not polled yet", "error": None}]), OK, []),   # just started
    (_desk(imap=[FAILING_BOX]), WARNING, ["imap"]),
    (_desk(daemon={"running": None, "pid": None, "error": "Permission denied"}, imap=[FAILING_BOX]),
     UNKNOWN, ["daemon", "imap"]),
    (_desk(daemon={"running": None, "pid": None, "error": "Permission denied"},
           queue={"backend": "redis", "url": "redis://r:6379/0", "reachable": False, "error": "Timeout"}),
     CRITICAL, ["daemon", "queue"]),
])
def test_the_worst_problem_decides_and_unknown_ranks_between_warning_and_critical(desk, verdict, parts):
    health = assess(desk)
    assert health.state == verdict and [p["part"] for p in health.problems] == parts


def test_a_reader_that_stops_early_does_not_change_the_exit_status(tmp_path):
    """`ticketd status | head -1` (a check reading the health line) exited 1, a healthy or a critical desk
    alike: the closed pipe broke a later line, and click answered that with 1."""
    import os
    import subprocess
    import sys

    from tests.cli import ROOT

    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")   # no database: critical
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    for args in (["status"], ["status", "--json"]):
        reading, writing = os.pipe()
        os.close(reading)   # the reader is gone before the first line
        try:
            done = subprocess.run([sys.executable, "-m", "ticketd.cli", *args, "--config", str(config)],
                                  stdout=writing, stderr=subprocess.PIPE, text=True, timeout=60, env=env, cwd=ROOT)
        finally:
            os.close(writing)
        assert done.returncode == CRITICAL, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
