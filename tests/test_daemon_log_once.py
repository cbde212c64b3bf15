"""`ticketd run` says each thing once in its log, though it runs as two processes (receiver and back office)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.conftest import write_config
from tests.daemon import TICKETD, DaemonProcess
from tests.waiting import eventually


def _group_daemon(config, log):
    """`ticketd run` leading its own process group, as a shell's job or a service is, its output in `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    fh = open(log, "ab")
    proc = subprocess.Popen([*TICKETD, "run", "--config", str(config)], stdout=fh, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    fh.close()
    assert eventually(lambda: "ticketd running" in log.read_text(errors="replace"), timeout=30), log.read_text()
    return proc


def assert_each_once(out: str, *lines: str) -> None:
    """Every one of `lines` appears exactly once in the log `out`."""
    assert {line: out.count(line) for line in lines} == dict.fromkeys(lines, 1), out


def test_start_sighup_and_sigterm_to_the_daemon_each_log_once(tmp_path, sqlite_url):
    config = write_config(tmp_path, sqlite_url)
    daemon = DaemonProcess(config).start()
    try:
        time.sleep(1)
        assert daemon.output().count("ticketd running") == 1, daemon.output()
        (tmp_path / "rules.yaml").unlink()
        daemon.proc.send_signal(signal.SIGHUP)
        assert eventually(lambda: "stay in force" in daemon.output())
        assert daemon.terminate() == 0
        assert_each_once(daemon.output(), "cannot be read", "stay in force", "signal SIGTERM: stopping",
                         "ticketd stopped")
    finally:
        daemon.stop()


def test_signals_to_the_whole_process_group_log_once(tmp_path, sqlite_url):
    """A terminal's hang-up or Ctrl-C, or a service manager, signals every process of the group."""
    config = write_config(tmp_path, sqlite_url)
    log = tmp_path / "run.log"
    proc = _group_daemon(config, log)
    try:
        time.sleep(1)
        (tmp_path / "rules.yaml").unlink()
        os.killpg(proc.pid, signal.SIGHUP)
        assert eventually(lambda: "stay in force" in log.read_text())
        time.sleep(1.5)   # a second reload, had the back office heard the hang-up twice
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0
        assert_each_once(log.read_text(), "ticketd running", "cannot be read", "stay in force",
                         "signal SIGTERM: stopping")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
