"""Wait for something another thread or process does, without fixed sleeps."""

from __future__ import annotations

import time


def eventually(predicate, timeout: float = 10.0, step: float = 0.05):
    """The predicate's value as soon as it is truthy, else its last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
