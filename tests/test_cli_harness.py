"""The harness that runs the command line for tests (tests/cli.py): a command that hangs fails its test."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.cli import run_cli_at_a_terminal
from tests.test_erase import deliver, mail_bytes


@pytest.mark.parametrize("fresh", ["0", "1"])
def test_a_command_past_its_time_raises_timeout_expired_as_subprocess_run_does(make_app, sqlite_url, tmp_path,
                                                                                monkeypatch, fresh):
    """Forked from the zygote or started anew, a command still waiting at its prompt is killed at the
    time given and the test sees subprocess.TimeoutExpired, not an exit code it might take for an answer."""
    monkeypatch.setenv("TICKETD_TEST_FRESH_CLI", fresh)
    app = make_app(sqlite_url)
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<c1@client.example.org>"))
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        run_cli_at_a_terminal(tmp_path / "ticketd.yaml", None, "tickets", "delete", "1", timeout=3)
    assert 3 <= time.monotonic() - started < 30
    assert raised.value.timeout == 3 and "delete" in raised.value.cmd
