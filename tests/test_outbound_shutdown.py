"""SIGTERM in the middle of a delivery batch: the mail not tried yet goes back to the outbox at once."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive, wait_until
from tests.test_outbound import outbound_yaml
from workers.runtime import bind, make_broker

NO_AGENTS = "agents: []\nroutes: []\n"
MAILS = 10
DELAY = 1.5           # the smarthost answers each DATA this late: the batch takes MAILS * DELAY
STOPPED_WITHIN = 8    # a stop waits for the mail on the wire, never for the rest of the batch (13.5 s more)


def _desk_with_pending_acks(make_app, tmp_path, sink, extra: str = "", timeout: float = 5):
    """An app whose outbox holds MAILS acknowledgements, due, that no job was enqueued for; its config."""
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db", outbound_port=sink.port, rules=NO_AGENTS,
                   extra=outbound_yaml(sink.port, timeout=timeout) + extra)
    receive(app, *[customer_mail(sender=f"c{i}@example.org", subject=f"Case {i}") for i in range(MAILS)])
    assert [r["state"] for r in outbox_rows(app)] == ["pending"] * MAILS
    return app, tmp_path / "ticketd.yaml"


def _stop_mid_batch(proc: DaemonProcess, app, sink) -> None:
    wait_until(lambda: [r for r in outbox_rows(app) if r["state"] == "sending"], timeout=20)
    sink.wait_for(1, timeout=10)       # one mail is out: the next one of the batch is on the wire
    assert sum(r["state"] == "sending" for r in outbox_rows(app)) > 1
    started = time.monotonic()
    try:
        assert proc.terminate(timeout=STOPPED_WITHIN) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"stopping took more than {STOPPED_WITHIN}s: it finished the batch first")
    assert time.monotonic() - started < STOPPED_WITHIN


def _assert_untried_given_back(app, sink) -> None:
    """Right after the exit: what went out is recorded sent, everything else is pending as if never claimed."""
    rows = outbox_rows(app)
    delivered = sorted(m.rcpt_tos[0] for m in sink.messages)
    assert sorted(r["recipient"] for r in rows if r["state"] == "sent") == delivered
    untried = [r for r in rows if r["state"] != "sent"]
    assert len(untried) >= MAILS // 2, "the batch was not stopped midway"
    assert [(r["state"], r["claimed_at"], r["attempts"]) for r in untried] == [("pending", None, 0)] * len(untried)


def _assert_each_sent_once(app, sink) -> None:
    sink.wait_for(MAILS, timeout=30)
    got = sink.settle(1.5)
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(f"c{i}@example.org" for i in range(MAILS))
    assert {r["state"] for r in outbox_rows(app)} == {"sent"}


def test_embedded_run_gives_untried_mail_back_at_sigterm(make_app, tmp_path, sink, processes):
    app, config = _desk_with_pending_acks(make_app, tmp_path, sink)
    sink.data_delay = DELAY
    run = DaemonProcess(config, "run").start()     # its first sweep enqueues the rows; one job claims them all
    processes.append(run)
    _stop_mid_batch(run, app, sink)
    _assert_untried_given_back(app, sink)
    sink.data_delay = 0
    processes.append(DaemonProcess(config, "run").start())
    _assert_each_sent_once(app, sink)


@pytest.mark.redis
def test_worker_gives_untried_mail_back_at_sigterm(make_app, tmp_path, sink, redis_server, processes):
    app, config = _desk_with_pending_acks(make_app, tmp_path, sink, extra=f"redis_url: {redis_server.url}\n")
    bind(app, make_broker(app))
    sink.data_delay = DELAY
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    app.enqueue("send_mail", (outbox_rows(app)[0]["id"],))   # its claim takes the whole outbox along
    _stop_mid_batch(worker, app, sink)
    _assert_untried_given_back(app, sink)
    # The rows given back were enqueued again: the next worker sends them, and nothing twice.
    sink.data_delay = 0
    processes.append(DaemonProcess(config, "worker").start())
    _assert_each_sent_once(app, sink)
