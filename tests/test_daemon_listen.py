"""`ticketd run` on an smtp.listen another daemon holds: one clear line and exit 1, before any back office runs."""

from __future__ import annotations

import errno
import os
import time

import pytest

from tests.cli import run_cli
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from ticketd.daemon import listen_error
from ticketd.settings import load_settings


def test_a_second_daemon_on_a_taken_smtp_listen_says_so_and_starts_nothing(tmp_path):
    port = free_port()
    db_url = f"sqlite:///{tmp_path}/t.db"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = DaemonProcess(write_config(tmp_path / "one", db_url, smtp_port=port)).start()
    try:
        started = time.monotonic()
        second = run_cli(write_config(tmp_path / "two", db_url, smtp_port=port), "run")
        said = second.stdout + second.stderr
        assert second.returncode == 1, said
        assert time.monotonic() - started < 15
        assert "Traceback" not in said, said
        [line] = [x for x in said.splitlines() if f"127.0.0.1:{port}" in x]
        assert "smtp.listen" in line and "in use" in line, line
        assert "TICKETD_SMTP__LISTEN" not in line, line   # the file set it: no variable to hunt for
        # Nothing of the back office ran against the first daemon's database.
        assert "back office" not in said and "ticketd running" not in said, said
        assert first.proc.poll() is None   # the first daemon carries on
    finally:
        first.stop()


@pytest.mark.parametrize("code,says", [
    (errno.EADDRINUSE, "another ticketd or mail server may hold it"),
    (errno.EADDRNOTAVAIL, "no network interface of this machine has that address"),
    (errno.EACCES, "a port below 1024 needs root or CAP_NET_BIND_SERVICE"),
])
def test_the_line_says_what_to_do_for_the_reason_the_bind_failed(tmp_path, code, says):
    """An address the machine lacks, or a low port without the right, is no daemon holding the port."""
    settings = load_settings(write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", smtp_port=25), environ={})
    line = listen_error(settings, OSError(code, os.strerror(code)), environ={})
    assert line.startswith("cannot listen on smtp.listen 127.0.0.1:25: ")
    for variable in ("TICKETD_SMTP__LISTEN", "TICKETD_SMTP__listen", "TICKETD_SMTP"):
        by_variable = listen_error(settings, OSError(code, os.strerror(code)), environ={variable: "x:25"})
        assert by_variable.startswith(f"cannot listen on smtp.listen 127.0.0.1:25 (set by {variable}): ")
    assert os.strerror(code) in line and says in line
    advice = ("may hold it", "no network interface", "CAP_NET_BIND_SERVICE")
    assert [a for a in advice if a in line] == [a for a in advice if a in says]   # that advice alone
