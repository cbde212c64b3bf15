"""A failure that comes back every sweep: its traceback logged once, then one line each time."""

from __future__ import annotations

import logging
import sys


class RepeatingFailures:
    """Remembers the errors it has logged a traceback for, per process.

    A sweep retries a failing ticket or timer every few seconds; a broken
    template or a row the code cannot handle would otherwise fill the log with
    the same traceback for days. The error's type and text are its identity;
    at `limit` distinct errors (each naming a row, say) the memory starts
    again, so it cannot grow for months.
    """

    def __init__(self, logger: logging.Logger, limit: int = 100) -> None:
        self._log = logger
        self._limit = limit
        self._seen: set[str] = set()

    def failed(self, message: str, *args) -> None:
        """Log the exception being handled with `message`: with its traceback the first time."""
        exc = sys.exc_info()[1]
        error = f"{type(exc).__name__}: {exc}"
        if error in self._seen:
            self._log.error(message + " (again: %s)", *args, error)
            return
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(error)
        self._log.exception(message, *args)
