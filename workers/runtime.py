"""Wire the broker into an App: in-process workers, or Redis for `ticketd worker`."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from ticketd.app import App
from workers.actors import QUEUE, declare_actors
from workers.broker_health import EnqueueHealth, describe
from workers.sweeps import sweep_once

log = logging.getLogger("ticketd.workers")


def make_broker(app: App) -> dramatiq.Broker:
    if app.settings.redis_url:
        # The namespace keeps desks sharing one Redis database apart: each
        # worker takes only its own desk's jobs, whose ids name its own rows.
        broker = RedisBroker(url=app.settings.redis_url, namespace=app.settings.redis_namespace)
    else:
        broker = StubBroker()
    broker.declare_queue(QUEUE)
    return broker


def bind(app: App, broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Declare the actors on `broker` and point app.enqueue at them."""
    actors = declare_actors(broker, app)
    # Half a sweep: each sweep finds the next try due, and makes it.
    health = EnqueueHealth(retry_seconds=app.settings.sweep_seconds / 2)
    where = describe(app.settings)

    def enqueue(name: str, args: tuple) -> bool:
        if not health.may_try():
            return False
        try:
            actors[name].send(*args)
        except Exception as exc:
            # Redis down: the row is committed and the sweep will enqueue it
            # again, so this delays the work and never loses it. Said once per
            # outage: a line per job and sweep buried the log.
            if health.failed():
                log.warning("cannot enqueue jobs to %s: %s. Mail and assignments wait in the database; the sweep "
                            "enqueues them once it answers (said again only then)", where, str(exc).rstrip(". "))
            return False
        if (down := health.worked()) is not None:
            log.info("%s takes jobs again after %.0f s; the sweep enqueues what waited", where, down)
        return True

    app.enqueue = enqueue
    return actors


class WorkerPool:
    """dramatiq worker threads inside this process."""

    def __init__(self, broker: dramatiq.Broker, threads: int = 4) -> None:
        self.worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=threads, worker_timeout=200)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(timeout=30_000)


class Sweeper:
    """Periodic, idempotent catch-up: re-enqueue what a crash or outage left behind.

    `app.sweep_now` wakes it before its time: SIGUSR1 to `ticketd run`,
    which the admin's commands that queue mail or change tickets send
    (`outbox retry`, `tickets assign`, `tickets close`), so that it goes
    out at once; that sweep takes fresh rows too, which had no job.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._asked = False
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)
        app.sweep_now = self._ask

    def _ask(self) -> None:
        self._asked = True
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.app.settings.sweep_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            asked, self._asked = self._asked, False
            try:
                sweep_once(self.app, asked=asked)
            except Exception:
                log.exception("sweep failed; trying again next round")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()   # not `_ask`: a stopping sweeper sweeps no more
        self._thread.join(timeout=30)


# In `ticketd run` the workers share one interpreter (one GIL) with the
# receiver and the processor: two threads keep delivery going without
# starving ticket processing in a burst (bench/README.md: 4 threads gave
# PostgreSQL 32-37 mails/s into tickets, 2 threads 43). `ticketd worker`
# processes have their own interpreter and default to 4.
IN_PROCESS_THREADS = 2


def worker_components(app: App, *, in_process: bool) -> list:
    broker = make_broker(app)
    bind(app, broker)
    components: list = [Sweeper(app)]
    if in_process:
        components.insert(0, WorkerPool(broker, IN_PROCESS_THREADS))
    return components
