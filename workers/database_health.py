"""Whether this worker reaches the database: an outage told once and its end once, its jobs left to the sweep."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ticketd.outage import Outage, said
from ticketd.store.db import unreachable

log = logging.getLogger("ticketd.workers")


class DatabaseHealth(Outage):
    """How this worker fares with the database, for its log and its heartbeat (`ticketd status`).

    A worker that reaches Redis but not the database (a wrong URL on its
    host, a firewall, the server down) took every job and failed it with a
    traceback, thousands of lines a minute, while its heartbeat kept status
    green. Now a job that finds the database away is given up quietly: its
    row is still pending in the database, and the sweep of `ticketd run`
    enqueues it again. The outage is logged once, its end once.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        # Called when an outage begins or ends (the heartbeat then beats at once, for `ticketd status`).
        self.on_change: Callable[[], None] = lambda: None

    @contextmanager
    def job(self, what: str) -> Iterator[None]:
        """Run one job: an unreachable database ends it quietly (told once), anything else is raised."""
        try:
            yield
        except Exception as error:
            if not unreachable(error):
                raise
            if self.failed(error):
                self.on_change()
                log.warning("the worker cannot reach the database (%s): it gives up %s, and each job until it "
                            "can, for the sweep to enqueue again; said again only once it reaches it",
                            said(error), what)
            return
        if (down := self.worked()) is not None:
            self.on_change()
            log.info("the worker reaches the database again after %.0f s", down)
