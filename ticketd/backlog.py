"""Whether mail waits to become tickets: processing says so; `ticketd run`'s own jobs and sweeps give way a while.

In `ticketd run` processing, the in-process jobs (acknowledgements, agent
notices, assignments) and the sweeps share one interpreter and, on
SQLite, one write lock (bench/README.md, "Ingest"). In a burst, each job
they run is time the raw rows wait longer to become tickets. While
processing has a backlog, a job waits until it is HOLD_SECONDS old and a
sweep round at most HOLD_SECONDS: mail into tickets first, and a longer
flood delays acknowledgements by that much, never starves them. Jobs in
`ticketd worker` processes (Redis mode) have their own interpreter and
never wait.
"""

from __future__ import annotations

import threading

# Longest a job or a sweep round waits for a backlog to go.
HOLD_SECONDS = 30.0
# Mails waiting at the start of a processing pass that make a backlog: two batches (ticketd.pipeline.BATCH).
BACKLOG_MAILS = 16


class Backlog:
    """Told by processing before each pass; read by whoever should give way to it."""

    def __init__(self) -> None:
        self._gone = threading.Event()
        self._gone.set()

    def pending(self, mails: int) -> None:
        """A processing pass starts with this many mails waiting: a backlog when they are many."""
        if mails >= BACKLOG_MAILS:
            self._gone.clear()
        else:
            self._gone.set()

    def ended(self) -> None:
        """Processing found nothing left, or stopped: nobody waits any more."""
        self._gone.set()

    @property
    def waiting(self) -> bool:
        return not self._gone.is_set()

    def give_way(self, at_most: float) -> None:
        """Wait while there is a backlog, at most `at_most` seconds (none when 0 or less)."""
        if at_most > 0:
            self._gone.wait(at_most)
