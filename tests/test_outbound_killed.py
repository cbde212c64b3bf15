"""SIGKILL in the middle of a delivery batch: the next sweep takes the claims back, not the lease minutes later."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess
from tests.sink import outbox_rows, wait_until
from tests.test_outbound_shutdown import DELAY, MAILS, _desk_with_pending_acks
from workers.runtime import bind, make_broker

TIMEOUT = 30        # outbound.timeout_seconds: a claim's lease is ten times that, 300 s
RECOVERED_IN = 30   # every mail out this soon after the next process starts, far inside the lease


def _kill_mid_batch(pid: int, app, sink) -> None:
    """SIGKILL `pid` once its batch is claimed and one mail is out, the next on the wire."""
    wait_until(lambda: [r for r in outbox_rows(app) if r["state"] == "sending"], timeout=20)
    sink.wait_for(1, timeout=10)
    os.kill(pid, signal.SIGKILL)
    stuck = [r for r in outbox_rows(app) if r["state"] == "sending"]
    assert len(stuck) >= MAILS // 2, "the batch was not killed midway"
    assert len({r["claimed_by"] for r in stuck}) == 1 and f":{pid}:" in stuck[0]["claimed_by"]


def _assert_each_sent_soon(app, sink, started: float) -> None:
    """Every mail arrives, each once but the one on the wire at the kill (it may go twice), well before the lease."""
    wanted = {f"c{i}@example.org" for i in range(MAILS)}
    wait_until(lambda: {m.rcpt_tos[0] for m in sink.messages} >= wanted, timeout=RECOVERED_IN)
    assert time.monotonic() - started < RECOVERED_IN
    got = [m.rcpt_tos[0] for m in sink.settle(1.5)]
    assert sorted(set(got)) == sorted(wanted) and len(got) - len(wanted) <= 1
    wait_until(lambda: {r["state"] for r in outbox_rows(app)} == {"sent"})


def _back_office_pid(run: DaemonProcess) -> int:
    """The pid of `ticketd run`'s back office (its multiprocessing child; not the resource tracker)."""
    def found() -> int | None:
        for pid in Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        return None
    return wait_until(found)


def test_embedded_run_after_its_back_office_was_killed_sends_what_it_held(make_app, tmp_path, sink, processes):
    app, config = _desk_with_pending_acks(make_app, tmp_path, sink, timeout=TIMEOUT)
    sink.data_delay = DELAY
    run = DaemonProcess(config, "run").start()     # its first sweep enqueues the rows; one job claims them all
    processes.append(run)
    _kill_mid_batch(_back_office_pid(run), app, sink)
    assert run.proc.wait(10) == 1                  # `ticketd run` stops without its back office
    sink.data_delay = 0
    started = time.monotonic()
    processes.append(DaemonProcess(config, "run").start())
    _assert_each_sent_soon(app, sink, started)
    assert "which has ended: pending again" in processes[-1].output()


@pytest.mark.redis
def test_a_killed_workers_mail_is_sent_by_another_worker(make_app, tmp_path, sink, redis_server, processes):
    """dramatiq hands the dead worker's job on only after a minute; the sweep makes a new one at once."""
    app, config = _desk_with_pending_acks(make_app, tmp_path, sink, extra=f"redis_url: {redis_server.url}\n",
                                          timeout=TIMEOUT)
    bind(app, make_broker(app))
    sink.data_delay = DELAY
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    app.enqueue("send_mail", (outbox_rows(app)[0]["id"],))   # its claim takes the whole outbox along
    _kill_mid_batch(worker.proc.pid, app, sink)
    worker.proc.wait(10)
    sink.data_delay = 0
    started = time.monotonic()
    processes.append(DaemonProcess(config, "worker").start())
    processes.append(DaemonProcess(config, "run").start())     # its sweep looks at the claims
    _assert_each_sent_soon(app, sink, started)
