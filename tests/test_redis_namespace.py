"""`redis_namespace`: two desks on one Redis database each keep their own jobs."""

from __future__ import annotations

import re
import smtplib

import pytest
from pydantic import ValidationError

from tests.conftest import REDIS_URL, free_port, write_config
from tests.daemon import DaemonProcess
from tests.redis_space import queued, redis_namespace
from tests.sink import Sink, customer_mail
from tests.waiting import eventually
from ticketd.settings import load_settings

NO_AGENTS = "agents: []\nroutes: []\n"


def test_the_default_namespace_is_the_one_ticketd_always_used(tmp_path):
    # Jobs queued before an upgrade are still found by the upgraded workers.
    assert load_settings(None, environ={}).redis_namespace == "ticketd"
    assert load_settings(None, environ={"TICKETD_REDIS_NAMESPACE": "desk-b"}).redis_namespace == "desk-b"
    config = tmp_path / "ticketd.yaml"
    config.write_text("redis_namespace: billing.eu_1\n")
    assert load_settings(config, environ={}).redis_namespace == "billing.eu_1"


@pytest.mark.parametrize("value", ["''", "'desk b'", "'desk:b'", "'-desk'", "x" * 65, "'desk*'"])
def test_a_namespace_redis_keys_cannot_carry_is_an_error_naming_the_key(tmp_path, value):
    config = tmp_path / "ticketd.yaml"
    config.write_text(f"redis_namespace: {value}\n")
    with pytest.raises(ValidationError) as caught:
        load_settings(config, environ={})
    [error] = caught.value.errors()
    assert error["loc"] == ("redis_namespace",)
    assert re.search(r"redis_namespace must be 1 to 64 letters, digits, '-', '_' or '\.'.*; got '", error["msg"]), \
        error["msg"]


@pytest.fixture
def sinks():
    started = [Sink(free_port()).start(), Sink(free_port()).start()]
    yield started
    for sink in started:
        sink.stop()


@pytest.mark.redis
def test_two_desks_on_one_redis_database_never_take_each_others_jobs(tmp_path, sinks):
    """Desk A's acknowledgement waits in A's queue while only B's worker runs, and goes once A's worker does."""
    sink_a, sink_b = sinks
    processes: list[DaemonProcess] = []
    with redis_namespace("a") as space_a, redis_namespace("b") as space_b:
        configs = {}
        for name, space, sink in (("a", space_a, sink_a), ("b", space_b, sink_b)):
            home = tmp_path / name
            home.mkdir()
            configs[name] = write_config(
                home, f"sqlite:///{home}/ticketd.db", rules=NO_AGENTS, smtp_port=free_port(),
                extra=(f"redis_url: {REDIS_URL}\nredis_namespace: {space}\n"
                       f"outbound: {{host: 127.0.0.1, port: {sink.port}, timeout_seconds: 2}}\n"))
        try:
            # Both desks run; only desk B has a worker.
            for config, command in ((configs["b"], "worker"), (configs["b"], "run"), (configs["a"], "run")):
                processes.append(DaemonProcess(config, command).start())
            port_a = int(load_settings(configs["a"], environ={}).smtp.host_port[1])
            with smtplib.SMTP("127.0.0.1", port_a) as client:
                client.send_message(customer_mail(sender="cust-a@example.org"))

            # A's processor enqueued the acknowledgement; B's worker, polling the same Redis database, leaves it.
            assert eventually(lambda: queued(space_a) >= 1, timeout=15), processes[-1].output()
            assert sink_b.settle(2.0) == [] and sink_a.messages == []
            assert queued(space_a) >= 1

            processes.append(DaemonProcess(configs["a"], "worker").start())
            [got] = sink_a.wait_for(1, timeout=20)
            assert got.rcpt_tos == ["cust-a@example.org"]
            assert len(sink_a.settle(1.0)) == 1 and sink_b.messages == []
        finally:
            for proc in reversed(processes):
                proc.stop()
