"""One call timed and its peak memory read, in a process of its own.

A test module defines `_work(case)`: it builds the case's input (not measured) and returns a function of no
arguments that does the work and returns what the test asserts on, a JSON-able dict. `run_alone` runs it in a
fresh interpreter, so the peak is that call's alone and a call that never ends fails the test instead of hanging it.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CHILD = "import sys; from tests.bounds import measure; measure(sys.argv[1], sys.argv[2])"


def run_alone(module: str, case: str, *, timeout: int, doing: str) -> dict:
    """`module`'s work for `case` in a child process: its result with `seconds` and `growth` (bytes) added."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, module, case], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: still {doing} after {timeout} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def measure(module: str, case: str) -> None:
    """In the child: build the case, time its work, print the result with the time and the memory growth."""
    work = importlib.import_module(module)._work(case)
    before = _resident()
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(json.dumps({**result, "seconds": seconds, "growth": _peak() - before}))


def _resident() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak() -> int:
    """This process image's peak resident memory, in bytes."""
    # VmHWM, this image's own peak: ru_maxrss keeps the peak of the process before its exec (Linux keeps it
    # across execve), a test worker's hundreds of megabytes.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
