"""One `ticketd run` per data_dir: the pid file's flock, `ticketd status` reading it, and a SIGKILL freeing it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.test_daemon_processes import _alive, _spawned
from tests.waiting import eventually
from tests.cli import run_cli
from ticketd.pidlock import AlreadyRunning, PidLock, probe


def _daemon(config) -> dict:
    done = run_cli(config, "status", "--json")
    daemon = json.loads(done.stdout)["daemon"]
    assert done.returncode == (0 if daemon["running"] else 2), done.stderr   # a stopped daemon is critical
    assert (daemon["started_at"] is not None) == bool(daemon["running"]), daemon
    return {"running": daemon["running"], "pid": daemon["pid"]}


def _status_line(config) -> str:
    done = run_cli(config, "status")
    assert done.returncode in (0, 2), done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("daemon ")]
    return line


def _holds(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (and so could keep its lock)."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir() if fd.is_symlink())


def test_the_lock_is_exclusive_probed_without_keeping_it_and_released(tmp_path):
    path = tmp_path / "ticketd.pid"
    assert probe(path) == probe(path) and not probe(path).running   # no file: nothing runs, none is made
    assert not path.exists()
    # flock belongs to the open file: a second open in this process contends like another process would.
    first = PidLock(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(AlreadyRunning) as refused:
        PidLock(path).acquire(wait=0.2)
    assert refused.value.pid == os.getpid() and f"pid {os.getpid()}" in str(refused.value)
    held = probe(path)
    assert (held.running, held.pid) == (True, os.getpid())
    assert probe(path).running            # the probe let go: probing again sees the same
    first.release()
    assert not probe(path).running and path.read_text() == ""
    PidLock(path).acquire().release()


def test_second_run_refuses_status_tells_and_sigkill_frees_the_lock(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")
    pid_file = tmp_path / "var" / "ticketd.pid"
    assert _daemon(config) == {"running": False, "pid": None}
    assert _status_line(config) == "daemon   not running"

    first = DaemonProcess(config).start()
    restarted = None
    back_office = None
    try:
        pid = first.proc.pid
        assert _daemon(config) == {"running": True, "pid": pid}
        assert _status_line(config).startswith(f"daemon   running (pid {pid}, since ")

        started = time.monotonic()
        second = run_cli(config, "run")
        assert second.returncode == 1
        assert time.monotonic() - started < 15
        assert f"ticketd is already running on {pid_file.parent} (pid {pid}" in second.stderr
        assert "ticketd running" not in second.stdout
        assert first.proc.poll() is None and _daemon(config) == {"running": True, "pid": pid}

        # The back office is exec'd without the lock file: it cannot keep the lock past its parent.
        [back_office] = _spawned(pid)
        assert _holds(pid, pid_file) and not _holds(back_office, pid_file)

        os.kill(pid, signal.SIGKILL)
        first.proc.wait(10)
        assert _daemon(config) == {"running": False, "pid": None}
        assert _status_line(config) == "daemon   not running"
        assert pid_file.read_text() == f"{pid}\n"      # stale, and harmless
        assert eventually(lambda: not _alive(back_office), timeout=30)

        restarted = DaemonProcess(config).start()
        assert _daemon(config) == {"running": True, "pid": restarted.proc.pid}
        assert restarted.terminate() == 0
        assert _daemon(config) == {"running": False, "pid": None}
        assert pid_file.read_text() == ""
    finally:
        if back_office and _alive(back_office):
            os.kill(back_office, signal.SIGKILL)
        first.stop()
        if restarted:
            restarted.stop()
