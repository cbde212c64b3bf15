"""`ticketd run`: start the receiver, pollers, processor and workers; stop them cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Protocol

from ingest.imap import Poller
from ingest.smtp import Receiver
from ticketd.app import App
from ticketd.pipeline import drain
from ticketd.prepare_pool import ProcessPreparer
from ticketd.rules_watch import RulesWatcher
from workers.runtime import WorkerPool, bind, make_broker, worker_components

log = logging.getLogger("ticketd.daemon")


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class Processor:
    """Turns committed raw mail into tickets, in arrival order, in one thread.

    One thread keeps the order a reply needs (its original is processed
    first); the raw table is the queue, so a restart simply carries on.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processor", daemon=True)

    def start(self) -> None:
        if self.app.settings.prepare_processes:
            self.app.preparer = ProcessPreparer(self.app.settings, self.app.signer,
                                                self.app.settings.prepare_processes)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.app.mail_arrived.wait(self.app.settings.sweep_seconds)
            self.app.mail_arrived.clear()
            try:
                while drain(self.app) and not self._stop.is_set():
                    pass
            except Exception:  # the database is down: try again on the next wake-up
                log.exception("processing pass failed; retrying")
                self._stop.wait(1)

    def stop(self) -> None:
        self._stop.set()
        self.app.mail_arrived.set()
        self._thread.join(timeout=60)
        if self.app.preparer is not None:
            self.app.preparer.close()
            self.app.preparer = None


def build_components(app: App) -> list[Component]:
    """Everything `ticketd run` runs, in start order (stopped in reverse)."""
    components: list[Component] = [RulesWatcher(app)]   # also sets app.reload_rules for SIGHUP
    components.extend(worker_components(app, in_process=app.settings.redis_url is None))
    components.append(Processor(app))
    if app.settings.imap:
        components.extend(Poller(app, box) for box in app.settings.imap)
    components.append(Receiver(app))
    return components


def run(app: App) -> int:
    """Run until SIGTERM or SIGINT; exit code 0 after a clean stop."""
    stop = threading.Event()
    components = build_components(app)

    def on_signal(signum, _frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reload_rules = getattr(app, "reload_rules", None)
    if reload_rules is not None:
        signal.signal(signal.SIGHUP, lambda *_: reload_rules())

    started = []
    try:
        for component in components:
            component.start()
            started.append(component)
        log.info("ticketd running")
        print("ticketd running", flush=True)
        while not stop.wait(1):
            pass
    finally:
        # The receiver stops first (new mail gets 421, mail in flight is
        # committed), then the processor finishes its mail, then workers.
        for component in reversed(started):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
    log.info("ticketd stopped")
    return 0


def run_worker(app: App, threads: int = 4) -> int:
    """`ticketd worker`: consume the Redis queue until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    broker = make_broker(app)
    bind(app, broker)
    pool = WorkerPool(broker, threads)
    pool.start()
    print("ticketd worker running", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        pool.stop()
    return 0
