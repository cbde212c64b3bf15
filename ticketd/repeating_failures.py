"""A failure that comes back every sweep: its traceback once, then a line each time; the database away, once."""

from __future__ import annotations

import logging
import sys

from ticketd.outage import Outage, said
from ticketd.store.db import unreachable


class RepeatingFailures:
    """Remembers the errors it has logged a traceback for, per process.

    A sweep retries a failing ticket or timer every few seconds; a broken
    template or a row the code cannot handle would otherwise fill the log with
    the same traceback for days. The error's type and text are its identity;
    at `limit` distinct errors (each naming a row, say) the memory starts
    again, so it cannot grow for months.

    A database out of reach fails every pass alike until it is back: that
    is one warning without a traceback, and one line when a pass goes
    through again (`worked`, which the callers call after each pass).
    """

    def __init__(self, logger: logging.Logger, limit: int = 100) -> None:
        self._log = logger
        self._limit = limit
        self._seen: set[str] = set()
        self._database = Outage()

    def failed(self, message: str, *args) -> None:
        """Log the exception being handled with `message`: with its traceback the first time."""
        exc = sys.exc_info()[1]
        if exc is not None and unreachable(exc):
            if self._database.failed(exc):
                self._log.warning(message + ": the database is out of reach (%s); said again only once it answers",
                                  *args, said(exc))
            return
        error = f"{type(exc).__name__}: {exc}"
        if error in self._seen:
            self._log.error(message + " (again: %s)", *args, error)
            return
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(error)
        self._log.exception(message, *args)

    def worked(self) -> None:
        """Record a pass that went through: the end of a database outage is told here, once."""
        if (down := self._database.worked()) is not None:
            self._log.info("the database answers again after %.0f s", down)
