"""A process that has imported ticketd's command line once and forks a fresh copy of itself for each command.

Starting `python -m ticketd.cli` costs most of a second of imports, and the
suite starts it over a thousand times. Each command still runs in a process
of its own, with the environment, working directory, stdin, stdout and stderr
it is given, and its exit code is its own; only the imports are shared, done
before any test's environment is known (no module of ticketd reads the
environment when imported). TICKETD_TEST_FRESH_CLI=1 starts a new
interpreter for each command instead (tests/cli.py).

Protocol, over a Unix socket: the client sends a JSON request and three file
descriptors (stdin, stdout, stderr); the answer is the exit code as text, or
"timeout" when the command ran past the request's `timeout` and was killed.
"""

from __future__ import annotations

import array
import atexit
import json
import os
import runpy
import socket
import sys
import time
import traceback

# What the commands need, imported once here rather than in each process. Not dramatiq: what a worker module
# sets up on import is left to the command that wants it.
import sqlalchemy  # noqa: F401

import ticketd.app  # noqa: F401
import ticketd.cli  # noqa: F401
import ticketd.cli.common  # noqa: F401
import ticketd.health  # noqa: F401
import ticketd.store.errors  # noqa: F401
import ticketd.views  # noqa: F401
from tests.cli import TIMED_OUT

_FDS = 3


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds = b"", []
    while not data.endswith(b"\n"):
        chunk, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_LEN(_FDS * array.array("i").itemsize))
        if not chunk:
            raise EOFError
        data += chunk
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
    return json.loads(data), fds


def _command(request: dict, fds: list[int]) -> None:
    """In the forked child: become `python -m ticketd.cli ARGS` and exit with its code."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["ticketd.cli", *request["args"]]
    code = 0
    try:
        runpy.run_module("ticketd.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> str:
    """The command's exit code, or "timeout" once it ran past `timeout` seconds and was killed."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return str(os.waitstatus_to_exitcode(status))
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return TIMED_OUT
        time.sleep(0.005)


def serve(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(1.0)
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:   # the test process that started it is gone: so is the need
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        with conn:
            try:
                request, fds = _receive(conn)
            except (EOFError, OSError, ValueError):
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                _command(request, fds)
            for fd in fds:
                os.close(fd)
            code = _wait(pid, request.get("timeout", 60))
            try:
                conn.sendall(code.encode())
            except OSError:
                pass
    os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1])
