"""A claim's process name: a process that ended is seen as ended on its machine, and nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from ticketd.claimant import ProcessName, has_ended, start_time, this_process

NAME_ITSELF = "from ticketd.claimant import this_process; print(this_process(), flush=True); input()"


@pytest.fixture
def other_process():
    """A live Python process that printed its own name; its Popen and that name."""
    proc = subprocess.Popen([sys.executable, "-c", NAME_ITSELF], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    name = proc.stdout.readline().strip()
    yield proc, name
    proc.kill()
    proc.wait()


def test_this_process_is_named_by_host_pid_boot_namespace_and_start():
    name = ProcessName.parse(this_process())
    assert name is not None and name.comparable
    assert name.pid == os.getpid() and name.started == start_time(os.getpid())
    assert this_process() == str(name)


def test_a_running_process_has_not_ended_and_a_killed_one_has(other_process):
    proc, name = other_process
    assert ProcessName.parse(name).pid == proc.pid
    assert not has_ended(name)
    assert not has_ended(this_process())
    proc.kill()
    deadline = time.monotonic() + 10
    while open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":   # killed, not waited for
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert has_ended(name)
    proc.wait()
    assert has_ended(name)


def test_a_pid_running_a_process_started_at_another_time_has_ended(other_process):
    """The pid was reused: the process that claimed is gone though its number runs."""
    _, name = other_process
    parsed = ProcessName.parse(name)
    assert has_ended(str(replace(parsed, started=str(int(parsed.started) - 1))))


def test_another_boot_or_pid_namespace_is_never_judged(other_process):
    """Its pids are not this machine's (or container's) to look at: only the lease takes its claims back."""
    proc, name = other_process
    proc.kill()
    proc.wait()
    parsed = ProcessName.parse(name)
    assert has_ended(str(parsed))
    assert not has_ended(str(replace(parsed, boot="0" * 16)))
    assert not has_ended(str(replace(parsed, pid_namespace="1")))
    assert not has_ended(str(replace(parsed, started="-")))


@pytest.mark.parametrize("text", ["", "worker-1", "host:notapid:a:b:c", "a:b"])
def test_a_name_that_is_not_a_process_name_is_never_judged(text):
    assert ProcessName.parse(text) is None
    assert not has_ended(text)


def test_a_host_name_is_kept_whole():
    name = ProcessName("desk-1.example.org", 42, "ab12", "4026531836", "21560")
    assert ProcessName.parse(str(name)) == name
