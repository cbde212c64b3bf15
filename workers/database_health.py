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
    """How this worker fares with the database, for its log, its heartbeat (`ticketd status`) and its pause.

    A worker that reaches Redis but not the database (a wrong URL on its
    host, a firewall, the server down) took every job and failed it with a
    traceback, thousands of lines a minute, while its heartbeat kept status
    green. Now a job that finds the database away is given up quietly: its
    row is still pending in the database, and the sweep of `ticketd run`
    enqueues it again. The outage is logged once, its end once.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._listeners: list[Callable[[], None]] = []
        # Set by PauseWhileAway (workers/database_pause.py): the worker then takes no jobs during an
        # outage, and a probe this often finds its end.
        self.probe_seconds: float | None = None

    def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` when an outage begins and when it ends."""
        self._listeners.append(callback)

    @contextmanager
    def job(self, what: str) -> Iterator[None]:
        """Run one job: an unreachable database ends it quietly (told once), anything else is raised."""
        try:
            yield
        except Exception as error:
            if not unreachable(error):
                raise
            if self.failed(error):
                self._changed()
                if self.probe_seconds is None:
                    log.warning("the worker cannot reach the database (%s): it gives up %s, and each job until "
                                "it can, for the sweep to enqueue again; said again only once it reaches it",
                                said(error), what)
                else:
                    log.warning("the worker cannot reach the database (%s): it gives up %s and takes no jobs "
                                "until it reaches it again (it tries every %.0f s; the sweep of `ticketd run` "
                                "enqueues what it gave up again, for any worker); said again only then",
                                said(error), what, self.probe_seconds)
            return
        self.reached()

    def reached(self) -> None:
        """A job or a probe reached the database: the end of an outage is told."""
        if (down := self.worked()) is not None:
            self._changed()
            log.info("the worker reaches the database again after %.0f s%s", down,
                     "" if self.probe_seconds is None else " and takes jobs again")

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()
