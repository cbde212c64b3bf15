"""A stop that waits for a smarthost slow to answer the final dot asks the service manager for more time as it goes
(sd_notify EXTEND_TIMEOUT_USEC): systemd's TimeoutStopSec need not grow with outbound.timeout_seconds."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from outbound.send import DATA_END_TIMEOUTS
from tests.conftest import free_port
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_daemon_stop_budget import NO_AGENTS, _KeepsThenAnswersLate, _stop_with_mail_on_the_wire
from tests.test_outbound import outbound_yaml
from ticketd.daemon import EXTEND_EVERY_SECONDS, _wait_asking_time
from workers.runtime import bind, make_broker

TIMEOUT = 5                                   # outbound.timeout_seconds: the reply to the dot is awaited 20 s
LATE = 0.75 * DATA_END_TIMEOUTS * TIMEOUT     # 15 s: three times the interval between two asks
# The receiver's stop with no session open, before the back office is waited for: a TimeoutStopSec this short
# would hold, as long as every ask comes before the last one runs out.
FIRST_ASK_WITHIN = 4


class _ServiceManager:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: what it heard and when (time.monotonic())."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.heard: list[tuple[float, str]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.heard.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.sock.close()

    def asks(self) -> list[tuple[float, float]]:
        """The EXTEND_TIMEOUT_USEC heard: (when, seconds asked)."""
        return [(when, int(state.partition("=")[2]) / 1e6) for when, state in self.heard
                if state.startswith("EXTEND_TIMEOUT_USEC=")]

    def when(self, state: str) -> float:
        return next(when for when, heard in self.heard if heard == state)


@pytest.fixture
def manager(tmp_path, monkeypatch):
    """The service manager's socket, named in NOTIFY_SOCKET for the daemon started next."""
    path = str(tmp_path / "notify")
    heard = _ServiceManager(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield heard
    heard.close()


@pytest.fixture
def smarthost():
    """A smarthost that answers the final dot LATE seconds after it has the mail."""
    handler = _KeepsThenAnswersLate(LATE)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def _held_until_exit(manager: _ServiceManager, exited: float) -> None:
    """As systemd 236+ keeps time, a stop timeout of FIRST_ASK_WITHIN would not have cut this stop: the first ask
    came within it, each next one before the last ran out, and the last outlasts the exit."""
    states = [state for _, state in manager.heard]
    stopping = manager.when("STOPPING=1")
    asks = manager.asks()
    assert len(asks) >= 2, manager.heard
    assert states.index("STOPPING=1") < states.index(next(s for s in states if s.startswith("EXTEND")))
    assert exited - stopping > 2 * FIRST_ASK_WITHIN, "the stop was too short to show anything"
    assert asks[0][0] - stopping < FIRST_ASK_WITHIN, manager.heard
    for (when, seconds), (after, _) in zip(asks, asks[1:]):
        assert after < when + seconds, manager.heard
    assert exited < asks[-1][0] + asks[-1][1], manager.heard


def test_run_asks_for_time_while_the_back_office_waits_for_the_smarthost(make_app, tmp_path, manager, smarthost,
                                                                        processes):
    handler, port = smarthost
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db", rules=NO_AGENTS, extra=outbound_yaml(port, timeout=TIMEOUT))
    receive(app, customer_mail())
    run = DaemonProcess(tmp_path / "ticketd.yaml", "run").start()
    processes.append(run)
    _stop_with_mail_on_the_wire(run, handler, app)
    exited = time.monotonic()
    assert [state for _, state in manager.heard][:2] == ["READY=1", "STOPPING=1"], manager.heard
    _held_until_exit(manager, exited)


@pytest.mark.redis
def test_worker_asks_for_time_while_its_pool_waits_for_the_smarthost(make_app, tmp_path, manager, smarthost,
                                                                     redis_server, processes):
    handler, port = smarthost
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db", rules=NO_AGENTS,
                   extra=outbound_yaml(port, timeout=TIMEOUT) + f"redis_url: {redis_server.url}\n")
    receive(app, customer_mail())
    bind(app, make_broker(app))
    worker = DaemonProcess(tmp_path / "ticketd.yaml", "worker").start()
    processes.append(worker)
    app.enqueue("send_mail", (outbox_rows(app)[0]["id"],))
    _stop_with_mail_on_the_wire(worker, handler, app)
    _held_until_exit(manager, time.monotonic())


def test_no_time_is_asked_past_the_stops_own_deadline(manager):
    never = threading.Event()
    stuck = threading.Thread(target=never.wait, daemon=True)
    stuck.start()
    try:
        started = time.monotonic()
        _wait_asking_time(stuck.join, stuck.is_alive, started + 0.5)
        returned = time.monotonic()
        time.sleep(0.3)   # anything sent is heard
        asks = manager.asks()
        assert stuck.is_alive() and returned - started < 2
        assert len(asks) == 1 and asks[0][1] <= 0.5 + EXTEND_EVERY_SECONDS, manager.heard
    finally:
        never.set()
