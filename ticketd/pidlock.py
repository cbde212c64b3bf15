"""The pid file under data_dir: `ticketd run` holds an exclusive flock on it while it lives.

flock(2) belongs to the open file, so the kernel drops it when the holder
dies, even by SIGKILL: a stale file never blocks a restart, and the lock,
not the file's presence or its pid, says whether a daemon runs.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "ticketd.pid"

# `ticketd status` takes the lock for a moment to probe it; a daemon
# starting in that moment waits this long rather than refuse wrongly.
ACQUIRE_SECONDS = 0.5


def pid_path(data_dir: Path) -> Path:
    return Path(data_dir) / PID_FILE


class AlreadyRunning(Exception):
    """Another process holds the pid file's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"pid {pid}" if pid is not None else "pid not written yet"
        super().__init__(f"ticketd is already running on {path.parent} ({holder}, lock {path}); "
                         "not starting a second one")


@dataclass(frozen=True)
class Holder:
    """What a probe of the pid file found: running is None when the file could not be read."""
    running: bool | None
    pid: int | None
    error: str | None = None


class PidLock:
    """The exclusive lock of one `ticketd run`, held until release() or the process's death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait: float = ACQUIRE_SECONDS) -> PidLock:
        """Take the lock and write our pid; AlreadyRunning if another process keeps it for `wait` seconds."""
        # O_CLOEXEC: the back office and other children are exec'd and must
        # not inherit the lock, or it would outlive a killed `ticketd run`.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise AlreadyRunning(self.path, read_pid(self.path))
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the file and let go (closing the file drops the lock)."""
        if self._fd is not None:
            # Emptied, not removed: removing a locked file lets a second
            # daemon lock a new file of the same name while the first runs.
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_pid(path: Path) -> int | None:
    """The pid written in the file, or None (missing, empty, or being written)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def probe(path: Path) -> Holder:
    """Whether a daemon holds the lock, without waiting and without keeping it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return Holder(False, None)
    except OSError as exc:
        return Holder(None, None, f"cannot open {path}: {exc.strerror}")
    try:
        # Shared: two probes at once do not see each other as a daemon.
        if _try_lock(fd, fcntl.LOCK_SH):
            return Holder(False, None)
        return Holder(True, read_pid(path))
    finally:
        os.close(fd)   # drops the probe's lock, if it got one
