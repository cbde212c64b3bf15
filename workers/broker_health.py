"""Whether the queue takes and hands out jobs: told once when that changes, and probed for `ticketd status`."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import dramatiq
import redis
from dramatiq.common import dq_name
from redis.backoff import NoBackoff
from redis.retry import Retry

from ticketd.outage import Outage, said
from ticketd.settings import Settings
from workers.actors import QUEUE
from workers.database_health import DatabaseHealth

# `ticketd status` waits this long at most for Redis: a monitoring check must
# not hang on a host that drops packets.
PING_SECONDS = 2.0

# Each `ticketd worker` says it is alive this often, in a sorted set of the desk's namespace scored by Redis's
# own clock (hosts' clocks may differ); one not heard from for WORKER_GONE_SECONDS is gone (killed, its host
# down, cut off from Redis). dramatiq's own `__heartbeats__` cannot tell: `ticketd run`'s enqueueing writes
# there too.
WORKER_BEAT_SECONDS = 10.0
WORKER_GONE_SECONDS = 60.0

log = logging.getLogger("ticketd.workers")


def shown_url(url: str) -> str:
    """`url` with its password (in the address or a `password=` parameter) replaced by ***, for logs and status."""
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            url = url.replace(netloc, f"{user.split(':', 1)[0]}:***@{host}", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def describe(settings: Settings) -> str:
    """The queue backend as the log names it."""
    if settings.redis_url is None:
        return "the in-process queue"
    return f"Redis at {shown_url(settings.redis_url)} (namespace {settings.redis_namespace})"


class EnqueueHealth(Outage):
    """Whether enqueueing works in this process, so that the log says when that changes and never per job.

    While the broker is down one real try goes through every `retry_seconds`
    and every other enqueue fails at once: a Redis that does not answer holds
    each try for its socket timeout (5 s), which the processor would wait per
    mail and the sweep per pending row. Whatever is not enqueued stays pending
    in the database and the sweep enqueues it later (STYLE.md: a Redis outage
    delays mail, never loses it).
    """

    def __init__(self, retry_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.retry_seconds = retry_seconds
        self._next_try = 0.0
        self._try_lock = threading.Lock()

    def may_try(self) -> bool:
        """False while the broker is down and its next try is not due: fail this enqueue without trying."""
        if self.trouble() is None:
            return True
        with self._try_lock:
            now = self._clock()
            if now < self._next_try:
                return False
            self._next_try = now + self.retry_seconds
            return True

    def failed(self, error: BaseException) -> bool:
        """Record a failed enqueue; True when it is the first since enqueueing worked (the one to report)."""
        with self._try_lock:
            self._next_try = self._clock() + self.retry_seconds
        return super().failed(error)


class ConsumerHealth:
    """Which queues' consumers in this worker lost the broker, so that an outage is told once and its end once.

    dramatiq consumes each queue (ours and its delay queue) in a thread of
    its own that retries every 3 s; the outage begins when the first loses
    the broker and ends when the last takes jobs again, whatever order they
    fail and come back in.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down: set[str] = set()
        self._down_since: float | None = None

    def lost(self, queue: str) -> bool:
        """Record that `queue`'s consumer lost the broker; True when this begins an outage (the one to report)."""
        with self._lock:
            self._down.add(queue)
            if self._down_since is not None:
                return False
            self._down_since = self._clock()
            return True

    def is_down(self, queue: str) -> bool:
        with self._lock:
            return queue in self._down

    def back(self, queue: str) -> float | None:
        """Record that `queue`'s consumer reads the broker; the seconds it was down when this ends the outage."""
        with self._lock:
            if queue not in self._down:
                return None
            self._down.discard(queue)
            if self._down or self._down_since is None:
                return None
            down, self._down_since = self._clock() - self._down_since, None
            return down


def workers_key(namespace: str) -> str:
    """The sorted set of the desk's live workers: member a worker's name, score its last beat."""
    return f"{namespace}:__ticketd_workers__"


def troubles_key(namespace: str) -> str:
    """The hash of the desk's workers that cannot reach the database: field a worker's name, value JSON
    (`error`, `since`: when the outage began, by Redis's clock)."""
    return f"{namespace}:__ticketd_worker_troubles__"


def _redis_now(client: redis.Redis) -> float:
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


class WorkerHeartbeat(dramatiq.Middleware):
    """While a worker of this broker runs, a beat every WORKER_BEAT_SECONDS for `ticketd status` to count.

    A worker that stops takes its name off at once; one that dies ages out.
    Each beat also says whether the worker reaches the database (`database`):
    one that beats but cannot do its jobs is no help, and status says so.
    """

    def __init__(self, client: redis.Redis, namespace: str, database: DatabaseHealth | None = None) -> None:
        self.client, self.key, self.troubles = client, workers_key(namespace), troubles_key(namespace)
        self.database = database or DatabaseHealth()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()   # a stop, or the database lost or found again: beat now
        self.database.listen(self._wake.set)
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.zrem(self.key, self.name)
            self.client.hdel(self.troubles, self.name)
        except (redis.RedisError, OSError):   # Redis away: the beat ages out
            pass

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except (redis.RedisError, OSError) as exc:   # the consumers tell an outage (ConsumerHealth)
                log.debug("worker heartbeat not written: %s", exc)
            self._wake.wait(WORKER_BEAT_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return

    def beat(self) -> None:
        """Write this worker's beat, and drop the beats of workers gone."""
        now = _redis_now(self.client)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.key, {self.name: now})
        pipe.zremrangebyscore(self.key, "-inf", now - WORKER_GONE_SECONDS)
        pipe.expire(self.key, int(10 * WORKER_GONE_SECONDS))   # a desk whose workers all went leaves no key
        if (trouble := self.database.trouble()) is not None:
            error, seconds = trouble
            pipe.hset(self.troubles, self.name, json.dumps({"error": error, "since": now - seconds}))
            pipe.expire(self.troubles, int(10 * WORKER_GONE_SECONDS))
        else:
            pipe.hdel(self.troubles, self.name)
        pipe.execute()


def queue_status(settings: Settings) -> dict:
    """For `ticketd status`: the backend, and for Redis whether it answers a PING and takes a write, how many
    jobs wait, how many `ticketd worker`s beat within WORKER_GONE_SECONDS and which of them lack the database."""
    if settings.redis_url is None:
        # The queue lives inside `ticketd run`; the daemon line says whether that runs.
        return {"backend": "in-process"}
    namespace = settings.redis_namespace
    shown = {"backend": "redis", "url": shown_url(settings.redis_url), "namespace": namespace}
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=PING_SECONDS,
                                  socket_timeout=PING_SECONDS, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
        # dramatiq's list of job ids per queue, and of delayed ones (read directly: its own
        # dispatch script would register this command as a worker).
        waiting = sum(int(client.llen(f"{namespace}:{name}")) for name in (QUEUE, dq_name(QUEUE)))
        now = _redis_now(client)
        workers = int(client.zcount(workers_key(namespace), now - WORKER_GONE_SECONDS, "+inf"))
        # The newest beat of all, a gone worker's too: none left means every worker took itself off when it
        # stopped (or never started, or went quiet so long ago that the set expired).
        newest = client.zrevrange(workers_key(namespace), 0, 0, withscores=True)
        troubled = _troubled(client, namespace, now)
        write_error = _write_refused(client, namespace)
    except (redis.RedisError, OSError) as exc:
        return {**shown, "reachable": False, "error": said(exc), "write_error": None, "waiting": None,
                "workers": None, "last_beat_seconds_ago": None, "workers_without_database": []}
    finally:
        client.close()
    last_beat = round(max(0.0, now - newest[0][1]), 1) if newest else None
    return {**shown, "reachable": True, "error": None, "write_error": write_error, "waiting": waiting,
            "workers": workers, "last_beat_seconds_ago": last_beat, "workers_without_database": troubled}


def _write_refused(client: redis.Redis, namespace: str) -> str | None:
    """Why Redis refuses a write, or None: one that answers PING and reads may still refuse every write (over
    `maxmemory` with `noeviction`, a read-only replica), and then no job is enqueued or taken."""
    try:
        client.set(f"{namespace}:__ticketd_status_probe__", b"1", ex=60)
    except redis.ResponseError as exc:
        return said(exc)
    return None


def _troubled(client: redis.Redis, namespace: str, now: float) -> list[dict]:
    """The live workers that cannot reach the database: name, error, and for how long, oldest outage first."""
    found = []
    for name, value in client.hgetall(troubles_key(namespace)).items():
        beat = client.zscore(workers_key(namespace), name)
        if beat is None or beat < now - WORKER_GONE_SECONDS:   # gone: the workers count says so
            continue
        trouble = json.loads(value)
        found.append({"worker": name.decode(), "error": trouble["error"],
                      "seconds": round(max(0.0, now - trouble["since"]), 1)})
    return sorted(found, key=lambda t: (-t["seconds"], t["worker"]))
