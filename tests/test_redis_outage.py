"""Redis out of reach: one WARNING when enqueueing starts failing, one INFO when it works again, mail kept.

Redis is cut at the protocol: `redis_url` points at a TCP proxy in front of
the test Redis, which refuses connections while cut.
"""

from __future__ import annotations

import json
import re
import smtplib
from urllib.parse import urlsplit

import pytest

from tests.cli import run_cli
from tests.conftest import REDIS_URL, free_port, write_config
from tests.daemon import DaemonProcess
from tests.redis_space import redis_namespace
from tests.sink import customer_mail
from tests.tcpproxy import TcpProxy
from tests.waiting import eventually
from workers.broker_health import EnqueueHealth, shown_url

NO_AGENTS = "agents: []\nroutes: []\n"


@pytest.fixture
def redis_proxy():
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname, target.port or 6379).start()
    yield proxy, f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"
    proxy.cut()


def _status(config) -> tuple[dict, str]:
    """`ticketd status --json` and `ticketd status`, each exiting as its `health` says (tests/test_status_exit.py)."""
    as_json, as_text = run_cli(config, "status", "--json"), run_cli(config, "status")
    desk = json.loads(as_json.stdout)
    exits = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[desk["health"]]
    assert as_json.returncode == exits and as_text.returncode == exits, as_json.stderr + as_text.stderr
    return desk, as_text.stdout


def _lines(output: str, level: str, logger: str = "ticketd.workers") -> list[str]:
    return [line for line in output.splitlines() if f" {level} {logger}:" in line]


@pytest.mark.redis
def test_redis_cut_warns_once_keeps_mail_pending_says_so_in_status_and_sends_it_when_back(
        tmp_path, sink, redis_proxy):
    proxy, url = redis_proxy
    smtp_port = free_port()
    with redis_namespace("outage") as space:
        config = write_config(tmp_path, f"sqlite:///{tmp_path}/ticketd.db", rules=NO_AGENTS, smtp_port=smtp_port,
                              extra=(f"redis_url: {url}\nredis_namespace: {space}\n"
                                     f"outbound: {{host: 127.0.0.1, port: {sink.port}, timeout_seconds: 2}}\n"))
        daemon = DaemonProcess(config, "run").start()
        worker = DaemonProcess(config, "worker")
        try:
            def mail(n: int) -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port) as client:
                    client.send_message(customer_mail(subject=f"Case {n}", sender=f"c{n}@example.org"))

            # Redis answers; no worker yet, so the acknowledgement's job waits in the queue.
            mail(0)
            # Its acknowledgement and its assignment, and whatever the sweep added since (a job nobody took):
            # the two are enqueued one after the other, and status may look between them.
            desk, text = eventually(lambda: ((s := _status(config))[0]["queue"].get("waiting") or 0) >= 2 and s,
                                    timeout=15)
            assert desk["queue"] == {"backend": "redis", "url": url, "namespace": space, "reachable": True,
                                     "error": None, "write_error": None, "waiting": desk["queue"]["waiting"],
                                     "workers": 0, "last_beat_seconds_ago": None, "workers_without_database": []}
            assert desk["queue"]["waiting"] >= 2
            assert re.search(rf"^queue +redis {re.escape(url)} \(namespace {space}\): answers, \d+ jobs waiting$",
                             text, re.M), text

            proxy.cut()
            for n in range(1, 4):
                mail(n)
            assert eventually(lambda: _status(config)[0]["outbox"]["pending"] == 4, timeout=15)
            # Many sweeps (every 0.2 s) find the three rows they cannot enqueue, and say nothing of them.
            eventually(lambda: False, timeout=3)
            log = daemon.output()
            [warning] = _lines(log, "WARNING")
            assert url in warning and "Connection refused" in warning and "sweep" in warning, warning
            assert "could not enqueue" not in log
            desk, text = _status(config)
            assert desk["queue"]["reachable"] is False and "Connection refused" in desk["queue"]["error"]
            assert desk["queue"]["waiting"] is None
            assert (desk["outbox"]["pending"], desk["outbox"]["sent"]) == (4, 0) and sink.messages == []
            [line] = [line for line in text.splitlines() if line.startswith("queue ")]
            assert "UNREACHABLE" in line and "Connection refused" in line and "waits in the outbox" in line, line

            proxy.restore()
            worker.start()
            got = sink.wait_for(4, timeout=30)
            got = sink.settle(1.5)
            assert sorted(m.rcpt_tos[0] for m in got) == [f"c{n}@example.org" for n in range(4)]   # each once
            log = daemon.output()
            [recovered] = _lines(log, "INFO")
            assert url in recovered and "again" in recovered, recovered
            assert len(_lines(log, "WARNING")) == 1
            desk, _ = _status(config)
            assert desk["queue"]["reachable"] is True and desk["outbox"]["sent"] == 4
        finally:
            worker.stop()
            daemon.stop()


def test_status_names_an_unreachable_redis_without_its_password(tmp_path, make_app):
    """A Redis nobody listens on: status says so at once (a short PING), password hidden, exit 2."""
    port = free_port()
    make_app(f"sqlite:///{tmp_path}/ticketd.db", extra=f"redis_url: redis://:s3cret@127.0.0.1:{port}/3\n")
    config = tmp_path / "ticketd.yaml"
    desk, text = _status(config)
    assert desk["queue"]["url"] == f"redis://:***@127.0.0.1:{port}/3"
    assert desk["queue"]["reachable"] is False and desk["queue"]["namespace"] == "ticketd"
    assert "s3cret" not in json.dumps(desk) and "s3cret" not in text
    assert f"redis://:***@127.0.0.1:{port}/3" in text and "UNREACHABLE" in text


def test_status_without_redis_says_the_queue_is_inside_the_daemon(tmp_path, make_app):
    make_app(f"sqlite:///{tmp_path}/ticketd.db")
    config = tmp_path / "ticketd.yaml"
    desk, text = _status(config)
    assert desk["queue"] == {"backend": "in-process"}
    assert re.search(r"^queue +in-process", text, re.M), text


def test_while_the_broker_is_down_one_enqueue_tries_per_interval_and_each_change_is_told_once():
    now = [100.0]
    health = EnqueueHealth(retry_seconds=2.5, clock=lambda: now[0])
    assert health.may_try() and health.worked() is None          # up: every enqueue tries, nothing to tell
    assert health.failed(ConnectionError("refused")) is True      # the first failure is the one reported
    assert [health.may_try() for _ in range(3)] == [False] * 3    # the rest fail at once, without a 5 s wait
    now[0] += 2.5
    assert health.may_try() is True and health.may_try() is False   # one try per interval
    assert health.failed(ConnectionError("refused")) is False     # still down: nothing more to say
    now[0] += 2.5
    assert health.may_try() is True and health.trouble() == ("refused", 5.0)
    assert health.worked() == 5.0 and health.worked() is None     # back after 5 s, told once
    assert health.may_try() and health.may_try()


@pytest.mark.parametrize("url, shown", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:pw@cache:6379/1", "redis://:***@cache:6379/1"),
    ("rediss://desk:pw@cache:6380/0", "rediss://desk:***@cache:6380/0"),
    ("redis://desk@cache:6379/0", "redis://desk@cache:6379/0"),
    ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
])
def test_a_redis_url_is_shown_without_its_password(url, shown):
    assert shown_url(url) == shown


@pytest.mark.redis
def test_status_gives_up_on_a_redis_that_does_not_answer_within_its_short_timeout(tmp_path, redis_proxy,
                                                                                    make_app):
    import time

    proxy, url = redis_proxy
    proxy.mute_replies.set()   # connects, then never answers: a host that drops packets
    make_app(f"sqlite:///{tmp_path}/ticketd.db", extra=f"redis_url: {url}\n")
    config = tmp_path / "ticketd.yaml"
    began = time.monotonic()
    done = run_cli(config, "status", "--json")
    assert done.returncode == 2, done.stderr   # critical: Redis does not answer
    queue = json.loads(done.stdout)["queue"]
    assert queue["reachable"] is False and "Timeout" in queue["error"], queue
    assert time.monotonic() - began < 15
