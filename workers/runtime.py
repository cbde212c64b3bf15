"""Wire the broker into an App: in-process workers, or Redis for `ticketd worker`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NoReturn

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.errors import BrokerConnectionError
from dramatiq.worker import CONSUMER_RESTART_DELAY

from outbound.delivery import lease_seconds
from ticketd.app import App
from ticketd.backlog import HOLD_SECONDS, Backlog
from workers.actors import QUEUE, declare_actors
from workers.broker_health import ConsumerHealth, EnqueueHealth, WorkerHeartbeat, describe
from workers.database_health import DatabaseHealth
from workers.sweeps import sweep_once

log = logging.getLogger("ticketd.workers")

# What dramatiq's consumer thread of a queue logs, from a logger of that queue's own, each time it retries a
# broker that does not answer (dramatiq/worker.py ConsumerThread.run): a CRITICAL line and an INFO line per queue
# every CONSUMER_RESTART_DELAY ms for as long as the outage lasts.
_CONNECTION_ERROR = "Consumer encountered a connection error: %s"
_RESTARTING = "Restarting consumer in %0.2f seconds."
# And, per job in hand whose ack or nack cannot reach Redis, a warning every 5 s
# (dramatiq/worker.py ConsumerThread.post_process_message).
_SETTLE_RETRY = "Failed to post_process_message("


def make_broker(app: App) -> dramatiq.Broker:
    if app.settings.redis_url:
        # The namespace keeps desks sharing one Redis database apart: each
        # worker takes only its own desk's jobs, whose ids name its own rows.
        broker = ReportingRedisBroker(describe(app.settings), url=app.settings.redis_url,
                                      namespace=app.settings.redis_namespace)
        broker.declare_queue(QUEUE)
        # Beats only while a worker of this broker runs: `ticketd worker`, never `ticketd run`'s enqueueing.
        broker.add_middleware(WorkerHeartbeat(broker.client, app.settings.redis_namespace, broker.database_health))
        for queue in (QUEUE, dq_name(QUEUE)):
            _quiet_retries(queue, broker.consumer_health, broker.database_health)
        return broker
    broker = StubBroker()
    broker.declare_queue(QUEUE)
    return broker


class DramatiqConsumerNoise(logging.Filter):
    """Drops dramatiq's lines for each retry of a consumer while ticketd.workers has reported its lost broker.

    Only those lines (and the warning for each ack it retries), and only
    then: a connection error nobody reported, and any other CRITICAL or
    ERROR of dramatiq's, pass as they are. A consumer paused while the
    database is away (workers/database_pause.py) says it restarts in 3 s
    as it stops; it restarts only once the database is back, which
    ticketd.workers tells: that line goes too.
    """

    def __init__(self, queue: str, health: ConsumerHealth, database: DatabaseHealth) -> None:
        super().__init__()
        self.queue, self.health, self.database = queue, health, database

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in (_CONNECTION_ERROR, _RESTARTING) and not str(record.msg).startswith(_SETTLE_RETRY):
            return True
        if self.health.is_down(self.queue):
            return False
        return not (record.msg == _RESTARTING and self.database.trouble() is not None)


def _quiet_retries(queue: str, health: ConsumerHealth, database: DatabaseHealth) -> None:
    """Put the filter on the logger of `queue`'s consumer thread, in place of one an earlier broker put there."""
    logger = logging.getLogger(f"dramatiq.worker.ConsumerThread({queue})")
    for old in [f for f in logger.filters if isinstance(f, DramatiqConsumerNoise)]:
        logger.removeFilter(old)
    logger.addFilter(DramatiqConsumerNoise(queue, health, database))


class ReportingRedisBroker(RedisBroker):
    """A RedisBroker whose consumers tell a Redis outage once, and its end once (dramatiq says neither once).

    While Redis is away each consumer thread retries every 3 s with a
    CRITICAL line and an INFO line, per queue: a night's outage buried the
    log. Here the first consumer to lose Redis logs one WARNING, the last
    to read it again one INFO, and DramatiqConsumerNoise drops dramatiq's
    lines between, as the enqueueing side does (`bind`).
    """

    def __init__(self, where: str, **options) -> None:
        super().__init__(**options)
        self.where = where   # as the log names it, password hidden
        self.consumer_health = ConsumerHealth()
        self.database_health = DatabaseHealth()   # its workers' jobs tell it; its heartbeat shows it

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        return _ReportingConsumer(super().consume(queue_name, prefetch, timeout), queue_name, self)


class _ReportingConsumer(dramatiq.Consumer):
    """dramatiq's consumer of one queue, telling the broker's ConsumerHealth when it loses Redis and reads it."""

    def __init__(self, consumer: dramatiq.Consumer, queue: str, broker: ReportingRedisBroker) -> None:
        self._consumer, self._queue, self._broker = consumer, queue, broker

    def __iter__(self) -> _ReportingConsumer:
        return self

    def __next__(self) -> dramatiq.MessageProxy | None:
        try:
            message = next(self._consumer)
        except (BrokerConnectionError, redis.ResponseError) as exc:
            self._lost(exc)   # dramatiq drops this consumer and makes a new one after a delay
        if (down := self._broker.consumer_health.back(self._queue)) is not None:
            log.info("the worker takes jobs from %s again after %.0f s", self._broker.where, down)
        return message

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(self._consumer.ack, message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(self._consumer.nack, message)

    def _settle(self, settle: Callable[[dramatiq.MessageProxy], None], message: dramatiq.MessageProxy) -> None:
        """Ack or nack a job done. Redis away, dramatiq tries again every 5 s with a warning of three lines,
        per job in hand; those lines go (DramatiqConsumerNoise) once this outage is told."""
        try:
            settle(message)
        except (BrokerConnectionError, redis.ResponseError) as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> NoReturn:
        """Tell the outage if it is news, and raise it as the BrokerConnectionError dramatiq retries quietly.

        A ResponseError is Redis answering and refusing (over maxmemory, a
        read-only replica): for the worker as much an outage as no answer,
        and dramatiq logged it with a traceback every 3 s.
        """
        refused = isinstance(exc, redis.ResponseError)
        if self._broker.consumer_health.lost(self._queue):
            log.warning("the worker takes no jobs: %s %s (%s). It tries again every %.0f s and says so only once "
                        "it takes jobs again", self._broker.where, "refuses them" if refused else "does not answer",
                        str(exc).rstrip(". "), CONSUMER_RESTART_DELAY / 1000)
        if refused:
            raise BrokerConnectionError(str(exc)) from exc
        raise exc

    def requeue(self, messages) -> None:
        self._consumer.requeue(messages)

    def close(self) -> None:
        self._consumer.close()


def bind(app: App, broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Declare the actors on `broker` and point app.enqueue at them."""
    actors = declare_actors(broker, app, getattr(broker, "database_health", None) or DatabaseHealth())
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
            if health.failed(exc):
                log.warning("cannot enqueue jobs to %s: %s. Mail and assignments wait in the database; the sweep "
                            "enqueues them once it answers (said again only then)", where, str(exc).rstrip(". "))
            return False
        if (down := health.worked()) is not None:
            log.info("%s takes jobs again after %.0f s; the sweep enqueues what waited", where, down)
        return True

    app.enqueue = enqueue
    return actors


class GiveWayToBacklog(dramatiq.Middleware):
    """A job of `ticketd run`'s own workers waits while processing has a backlog, until it is HOLD_SECONDS
    old (ticketd.backlog)."""

    def __init__(self, backlog: Backlog, hold_seconds: float = HOLD_SECONDS) -> None:
        self.backlog, self.hold_seconds = backlog, hold_seconds

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self.backlog.give_way(self.hold_seconds - (time.time() - message.message_timestamp / 1000))


def send_in_hand_seconds(app: App) -> float:
    """How long a stopping worker waits for the mail on the wire: as long as outbound.delivery lets one send run.

    Half the claim's lease: a send begun then still ends before the sweep
    may take its claim back. A smarthost slow to answer the final dot may
    have taken the mail (outbound/send.py, DATA_END_TIMEOUTS); cut there,
    the mail goes again at the next start, twice in the recipient's mailbox.
    """
    return lease_seconds(app) / 2


class WorkerPool:
    """dramatiq worker threads inside this process; a stop waits `stop_seconds` for the jobs in hand."""

    def __init__(self, broker: dramatiq.Broker, threads: int = 4, *, stop_seconds: float = 30) -> None:
        self.worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=threads, worker_timeout=200)
        self.stop_seconds = stop_seconds

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(timeout=int(self.stop_seconds * 1000))


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
            if not asked:
                self.app.backlog.give_way(HOLD_SECONDS)
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
        broker.add_middleware(GiveWayToBacklog(app.backlog))
        components.insert(0, WorkerPool(broker, IN_PROCESS_THREADS, stop_seconds=send_in_hand_seconds(app)))
    return components
