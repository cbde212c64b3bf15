"""Running the real `ticketd` command line against a test's config, as an admin would."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(config, *args: str, stdin=None) -> subprocess.CompletedProcess:
    """`ticketd ARGS --config CONFIG` in a fresh interpreter; TICKETD_* of the test run left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, stdin=stdin)


def run_cli_without_terminal(config, *args: str) -> subprocess.CompletedProcess:
    """As run_cli, with stdin not a terminal even when the tests run in one (a cron job, a script)."""
    return run_cli(config, *args, stdin=subprocess.DEVNULL)


def run_cli_at_a_terminal(config, answer: str, *args: str) -> subprocess.CompletedProcess:
    """The command with a terminal on stdin, where the admin types `answer`."""
    main, terminal = pty.openpty()
    try:
        os.write(main, answer.encode() + b"\n")
        return run_cli(config, *args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(main)


def cli_ok(config, *args: str) -> str:
    """What a command that must succeed prints."""
    done = run_cli(config, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout
