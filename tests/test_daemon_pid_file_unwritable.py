"""`ticketd run` that cannot open its pid file (data_dir read-only, or another user's) says so in one line."""

from __future__ import annotations

from tests.cli import run_cli
from tests.conftest import write_config


def test_a_pid_file_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/ticketd.db")
    # A directory where the pid file goes: the same failure to open as a read-only data_dir, even for root.
    pid_file = tmp_path / "var" / "ticketd.pid"
    pid_file.mkdir(parents=True)

    done = run_cli(config, "run", timeout=30)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"cannot open the pid file {pid_file}" in done.stderr, done.stderr
    assert "ticketd running" not in done.stdout + done.stderr
