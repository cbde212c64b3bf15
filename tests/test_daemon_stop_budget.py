"""A stop while a smarthost is slow to answer the final dot: the daemon waits for its reply, sends nothing twice."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiosmtpd.controller import Controller

from outbound.send import DATA_END_TIMEOUTS
from tests.conftest import free_port
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_outbound import outbound_yaml
from workers.runtime import bind, make_broker

NO_AGENTS = "agents: []\nroutes: []\n"
TIMEOUT = 12                                 # outbound.timeout_seconds: the reply to the dot is awaited 48 s
LATE = 0.75 * DATA_END_TIMEOUTS * TIMEOUT    # 36 s: within that wait, longer than a stopping pool once waited (30 s)
EXIT_WITHIN = LATE + 30


class _KeepsThenAnswersLate:
    """A smarthost that keeps each mail once its final dot arrives and answers `late` seconds after (it scans
    first): a client that hangs up in between has delivered it all the same, and sends it again later."""

    def __init__(self, late: float) -> None:
        self.late = late
        self.kept: list[str] = []
        self.on_the_wire = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.kept.append(envelope.rcpt_tos[0])
        self.on_the_wire.set()
        await asyncio.sleep(self.late)
        return "250 2.0.0 OK"


@pytest.fixture
def smarthost():
    """The slow smarthost on a free port."""
    handler = _KeepsThenAnswersLate(LATE)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def _stop_with_mail_on_the_wire(proc: DaemonProcess, handler: _KeepsThenAnswersLate, app) -> None:
    """SIGTERM while the smarthost holds the mail's dot unanswered: exit 0 once the reply came, recorded sent."""
    assert handler.on_the_wire.wait(30), f"no mail reached the smarthost:\n{proc.output()}"
    assert proc.terminate(timeout=EXIT_WITHIN) == 0, proc.output()
    assert [r["state"] for r in outbox_rows(app)] == ["sent"], proc.output()
    assert handler.kept == ["cust@example.org"]


def _sent_once_after_restart(proc: DaemonProcess, handler: _KeepsThenAnswersLate, app) -> None:
    """A new start finds nothing left to send: the recipient has the mail once."""
    handler.late = 0
    proc.start()
    try:
        threading.Event().wait(3)   # a dozen sweeps (sweep_seconds 0.2) that would take back a dead claim
        assert handler.kept == ["cust@example.org"], "the mail went twice"
        assert [r["state"] for r in outbox_rows(app)] == ["sent"]
    finally:
        assert proc.terminate() == 0


def test_run_stop_waits_for_the_smarthosts_reply(make_app, tmp_path, smarthost, processes):
    handler, port = smarthost
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db", rules=NO_AGENTS, extra=outbound_yaml(port, timeout=TIMEOUT))
    receive(app, customer_mail())
    config = tmp_path / "ticketd.yaml"
    run = DaemonProcess(config, "run").start()
    processes.append(run)
    _stop_with_mail_on_the_wire(run, handler, app)
    again = DaemonProcess(config, "run")
    processes.append(again)
    _sent_once_after_restart(again, handler, app)


@pytest.mark.redis
def test_worker_stop_waits_for_the_smarthosts_reply(make_app, tmp_path, smarthost, redis_server, processes):
    handler, port = smarthost
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db", rules=NO_AGENTS,
                   extra=outbound_yaml(port, timeout=TIMEOUT) + f"redis_url: {redis_server.url}\n")
    receive(app, customer_mail())
    bind(app, make_broker(app))
    config = tmp_path / "ticketd.yaml"
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    app.enqueue("send_mail", (outbox_rows(app)[0]["id"],))
    _stop_with_mail_on_the_wire(worker, handler, app)   # recorded sent: no sweep takes it back to send again
