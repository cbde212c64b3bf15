"""A worker that cannot reach the database takes no jobs until a probe reaches it again."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import dramatiq
import redis
from dramatiq.common import iter_queue
from dramatiq.errors import BrokerConnectionError

from workers.database_health import DatabaseHealth

log = logging.getLogger("ticketd.workers")

# How often a paused worker tries the database: the longest a job waits for it once the database is back.
PROBE_SECONDS = 5.0


class PauseWhileAway:
    """Pauses a dramatiq Worker while its DatabaseHealth tells an outage; resumes it once `probe` gets through.

    Giving its jobs up quietly kept the log clean, but the worker went on
    taking every job the sweep of `ticketd run` enqueued again, and giving
    it up, while workers that reach the database waited for it. Paused, it
    takes none, and the jobs it had taken but not begun go back to Redis at
    once, for a worker that reaches the database (or for this one, resumed).
    """

    def __init__(self, worker: dramatiq.Worker, database: DatabaseHealth, probe: Callable[[], object],
                 every: float = PROBE_SECONDS) -> None:
        self.worker, self.database, self.probe, self.every = worker, database, probe, every
        database.probe_seconds = every
        self._changed = threading.Event()
        self._stop = threading.Event()
        database.listen(self._changed.set)
        self.paused = False   # for the tests and the log's reader: whether the worker is paused now
        self._thread = threading.Thread(target=self._run, name="database-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self._changed.wait()
            self._changed.clear()
            if self._stop.is_set():
                return
            if self.database.trouble() is None:
                continue
            # Waits for the jobs in hand to end: here, not in a job's own thread, which would wait for itself.
            self.worker.pause()
            self.paused = True
            self._hand_back_jobs_not_begun()
            try:
                self._probe_until_reached()
            finally:
                self.paused = False
                self.worker.resume()

    def _hand_back_jobs_not_begun(self) -> None:
        """Put the jobs the consumers fetched ahead (dramatiq's prefetch) back on their Redis queues.

        Held here, they stayed in Redis's list of this worker's jobs in hand: the sweep, which enqueues
        only rows Redis holds no job for (workers/sweeps.py), left them to this paused worker.
        """
        taken: dict[str, list] = defaultdict(list)
        for item in iter_queue(self.worker.work_queue):
            taken[item.message.queue_name].append(item.message)
        for queue, messages in taken.items():
            try:
                self.worker.consumers[queue].requeue_messages(messages)
            except (BrokerConnectionError, redis.RedisError, OSError) as exc:
                # Redis away as well: dramatiq's maintenance gives them to another worker once this one's
                # consumers have been silent for its heartbeat timeout.
                log.debug("could not hand back %d job(s) of %s: %s", len(messages), queue, exc)

    def _probe_until_reached(self) -> None:
        while self.database.trouble() is not None and not self._stop.wait(self.every):
            try:
                self.probe()
            except Exception as error:   # still away; status shows its latest words
                self.database.failed(error)
                log.debug("database probe failed: %s", error)
                continue
            self.database.reached()
