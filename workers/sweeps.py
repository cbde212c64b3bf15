"""One sweep pass: pending outbox rows, tickets of lost groups, unassigned tickets, due timers, daily summaries."""

from __future__ import annotations

import logging
import time

import dramatiq
import redis
from dramatiq.common import dq_name
from redis.backoff import NoBackoff
from redis.retry import Retry

from outbound.delivery import sweep_outbox
from ticketd.app import App
from ticketd.assignment import sweep_unassigned
from ticketd.daily_summary import send_daily_summaries
from ticketd.regrouping import regroup_stranded
from ticketd.repeating_failures import RepeatingFailures
from ticketd.settings import Settings
from ticketd.timers import fire_due_timers
from workers.actors import QUEUE

log = logging.getLogger("ticketd.sweeps")
# A database down for an hour fails every step the same way every few seconds: one traceback will do.
_failures = RepeatingFailures(log)

# A Redis that does not answer must not hold up the sweep's other steps for long, nor at every round.
REDIS_SECONDS = 2.0
QUIET_AFTER_FAILURE_SECONDS = 10.0
_clients: dict[str, redis.Redis] = {}
_failed_at: dict[str, float] = {}


def _client(url: str) -> redis.Redis:
    """One client per Redis URL in this process (its connection pool is reused sweep after sweep)."""
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=REDIS_SECONDS, socket_timeout=REDIS_SECONDS,
                                             retry=Retry(NoBackoff(), 0))
    return _clients[url]


def send_mail_jobs(settings: Settings) -> set[int] | None:
    """The outbox ids Redis holds a send_mail job for; None without Redis or when it does not answer.

    dramatiq's Redis broker keeps each job's data in the hash `<namespace>:<queue>.msgs` from enqueue
    until a worker acknowledges it (dramatiq/brokers/redis/dispatch.lua, dramatiq 2.2.1), so the hash
    holds the jobs waiting and those in a worker's hands, including a dead worker's that dramatiq will
    hand out again; delayed jobs are in the `.DQ` queue's. Read directly: dramatiq's dispatch script
    would register this reader as a worker.
    """
    if settings.redis_url is None:
        return None
    failed_at = _failed_at.get(settings.redis_url)
    if failed_at is not None and time.monotonic() - failed_at < QUIET_AFTER_FAILURE_SECONDS:
        return None
    held: set[int] = set()
    try:
        client = _client(settings.redis_url)
        for queue in (QUEUE, dq_name(QUEUE)):
            for _, data in client.hscan_iter(f"{settings.redis_namespace}:{queue}.msgs", count=1000):
                if b"send_mail" not in data:
                    continue
                message = dramatiq.Message.decode(data)
                if message.actor_name == "send_mail" and message.args:
                    held.add(message.args[0])
    except (redis.RedisError, OSError, dramatiq.errors.DecodeError):
        _failed_at[settings.redis_url] = time.monotonic()
        return None   # cannot tell: the sweep enqueues as if no job were held (the enqueue fails as well, quietly)
    return held


def sweep_mail(app: App, **options) -> list[int]:
    """The outbox sweep, told which rows the Redis queue still holds a job for (not one more each round)."""
    return sweep_outbox(app, jobs_held=lambda: send_mail_jobs(app.settings), **options)


# Each step runs on its own: one that fails never keeps the others from
# catching up. A reload routes the tickets of groups it removed again once
# (ticketd.rules_watch); a mail routed by the rules before it, committed
# just after, landed in such a group and waited there until the next
# reload: each round looks again (a read of the open tickets' groups).
STEPS = (sweep_mail, regroup_stranded, sweep_unassigned, fire_due_timers, send_daily_summaries)


def sweep_once(app: App, *, asked: bool = False) -> None:
    """Every step once; `asked` (SIGUSR1 from an admin's command) takes fresh rows without the grace."""
    failed = False
    for step in STEPS:
        try:
            if asked and step in (sweep_mail, sweep_unassigned):
                step(app, grace_seconds=0)
            else:
                step(app)
        except Exception:
            failed = True
            _failures.failed("sweep step %s failed; trying again next round", step.__name__)
    if not failed:   # a step with nothing to do may not touch the database: only a whole round tells it answers
        _failures.worked()
