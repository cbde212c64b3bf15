"""An outage of something a process depends on (the database, the broker): its start and end, told once each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def said(error: BaseException) -> str:
    """An error in one line, as logs and status show it: the driver's own words for a database error."""
    return " ".join(str(getattr(error, "orig", None) or error).split()) or type(error).__name__


class Outage:
    """Whether a dependency is away, since when, and its last error.

    Those who use it report the first failure (`failed` returns True) and
    the first success after (`worked` returns the seconds it lasted); every
    failure between is the same outage, and a log line for each buried the
    log (a traceback per mail, per job).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._error: str | None = None

    def failed(self, error: BaseException) -> bool:
        """Record a failure; True when it begins an outage (the one to report)."""
        with self._lock:
            self._error = said(error)
            if self._down_since is not None:
                return False
            self._down_since = self._clock()
            return True

    def worked(self) -> float | None:
        """Record a success; the seconds the outage lasted when this ends one, else None."""
        with self._lock:
            if self._down_since is None:
                return None
            down, self._down_since, self._error = self._clock() - self._down_since, None, None
            return down

    def trouble(self) -> tuple[str, float] | None:
        """The last error and how many seconds ago the outage began, while it lasts."""
        with self._lock:
            if self._down_since is None:
                return None
            return self._error or "", self._clock() - self._down_since
