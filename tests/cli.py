"""Running the real `ticketd` command line against a test's config, as an admin would."""

from __future__ import annotations

import json
import locale
import os
import pty
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 60   # seconds a command may take before the test fails with subprocess.TimeoutExpired
TIMED_OUT = "timeout"   # tests/cli_zygote.py's answer for a command it killed at its timeout


def run_cli(config, *args: str, stdin=None, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """`ticketd ARGS --config CONFIG` in a process of its own; TICKETD_* of the test run left out.

    The process is forked from one that has the command line imported (tests/cli_zygote.py), or is a new
    interpreter with TICKETD_TEST_FRESH_CLI=1 (or where no such process can start). Either way a command
    still running after `timeout` seconds is killed and raises subprocess.TimeoutExpired."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    argv = [*args, "--config", str(config)]
    if os.environ.get("TICKETD_TEST_FRESH_CLI") != "1" and (zygote := _zygote()) is not None:
        return zygote.run(argv, env, stdin, timeout)
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *argv],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, stdin=stdin)



def run_ticketd(*args: str, cwd: Path, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """`ticketd ARGS` naming no config, in a new interpreter run in `cwd` as an admin runs it there (a
    ticketd.yaml in `cwd` is read; the repository's own is not); TICKETD_* of the test run left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)

class _Zygote:
    """The client of tests/cli_zygote.py: one per test process, started at its first command."""

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.mkdtemp(prefix="ticketd-cli-"), "socket")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
        self.process = subprocess.Popen([sys.executable, "-m", "tests.cli_zygote", self.path], cwd=ROOT, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the command-line zygote did not start")

    def run(self, argv: list[str], env: dict, stdin, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "rb") as devnull, socket.socket(socket.AF_UNIX) as conn:
            if stdin is None:
                stdin_fd = 0   # inherited, as subprocess.run does
            elif stdin == subprocess.DEVNULL:
                stdin_fd = devnull.fileno()
            else:
                stdin_fd = stdin if isinstance(stdin, int) else stdin.fileno()
            conn.connect(self.path)
            request = json.dumps({"args": argv, "env": env, "cwd": str(ROOT), "timeout": timeout}).encode() + b"\n"
            socket.send_fds(conn, [request], [stdin_fd, out.fileno(), err.fileno()])
            answer = b""
            while chunk := conn.recv(64):
                answer += chunk
            if not answer:
                raise RuntimeError("the command-line zygote gave no exit code")
            out.seek(0)
            err.seek(0)
            stdout, stderr = _text(out.read()), _text(err.read())
            if answer.decode() == TIMED_OUT:   # as subprocess.run(timeout=) raises
                raise subprocess.TimeoutExpired(["ticketd", *argv], timeout, stdout, stderr)
            return subprocess.CompletedProcess(["ticketd", *argv], int(answer), stdout, stderr)


def _text(data: bytes) -> str:
    """As subprocess.run(text=True) reads a stream: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


_started: list[_Zygote] = []


def _zygote() -> _Zygote | None:
    if not _started or _started[0].process.poll() is not None:
        try:
            _started[:] = [_Zygote()]
        except (OSError, RuntimeError):
            return None
    return _started[0]


def run_cli_without_terminal(config, *args: str) -> subprocess.CompletedProcess:
    """As run_cli, with stdin not a terminal even when the tests run in one (a cron job, a script)."""
    return run_cli(config, *args, stdin=subprocess.DEVNULL)


def run_cli_at_a_terminal(config, answer: str | None, *args: str, timeout: float = CLI_TIMEOUT) \
        -> subprocess.CompletedProcess:
    """The command with a terminal on stdin, where the admin types `answer` (None: nothing, ever)."""
    main, terminal = pty.openpty()
    try:
        if answer is not None:
            os.write(main, answer.encode() + b"\n")
        return run_cli(config, *args, stdin=terminal, timeout=timeout)
    finally:
        os.close(terminal)
        os.close(main)


def cli_ok(config, *args: str) -> str:
    """What a command that must succeed prints."""
    done = run_cli(config, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout
