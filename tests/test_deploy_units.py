"""The systemd units in deploy/ against the code they run: command, reload signal, stop timeout, writable data_dir."""

from __future__ import annotations

import re
import shlex
import signal
import threading
import tomllib
from pathlib import Path

import pytest

from ticketd.cli import main as ticketd_command
from ticketd.daemon import _stop_on_signals, run_stop_seconds, worker_stop_seconds

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"ticketd.service": ("run", run_stop_seconds), "ticketd-worker@.service": ("worker", worker_stop_seconds)}
# systemd.time(7): the units a time span may be written in.
SPAN_UNITS = {"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "m": 60, "minute": 60, "minutes": 60,
              "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "ms": 0.001, "msec": 0.001}


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections, each key with its values in order (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict, key: str) -> str:
    """The single value of a [Service] key."""
    values = unit["Service"].get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def _seconds(span: str) -> float:
    """A systemd time span ("300", "5min 30s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and "".join(n + u for n, u in parts) == span.replace(" ", ""), f"not a time span: {span!r}"
    return sum(float(number) * SPAN_UNITS[unit] for number, unit in parts)


@pytest.mark.parametrize("name", UNITS)
def test_exec_start_runs_a_ticketd_command_with_its_options(name):
    argv = shlex.split(_one(_unit(name), "ExecStart"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(argv[0]).name in scripts, f"{argv[0]} is no script the package installs"
    command = ticketd_command.commands[argv[1]]
    assert argv[1] == UNITS[name][0]
    options = {opt for param in command.params for opt in param.opts}
    given = [arg for arg in argv[2:] if arg.startswith("-")]
    assert "--config" in given
    assert set(given) <= options, f"{name}: options `ticketd {argv[1]}` does not take: {set(given) - options}"


@pytest.mark.parametrize("name", UNITS)
def test_exec_reload_sends_the_signal_the_daemon_reloads_on(name):
    argv = shlex.split(_one(_unit(name), "ExecReload"))
    assert Path(argv[0]).name == "kill" and argv[-1] == "$MAINPID"
    sent = signal.Signals["SIG" + argv[1].lstrip("-").removeprefix("SIG")]
    reloaded = threading.Event()
    kept = {s: signal.getsignal(s) for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)}
    try:
        stop = _stop_on_signals(reload=reloaded.set)
        handler = signal.getsignal(sent)
        assert callable(handler), f"the daemon sets no handler for {sent.name}"
        handler(sent, None)
        assert reloaded.is_set(), f"{sent.name} does not reload the rules"
        assert not stop.is_set(), f"{sent.name} stops the daemon"
    finally:
        for s, h in kept.items():
            if h is not None:
                signal.signal(s, h)


@pytest.mark.parametrize("name", UNITS)
def test_kill_signal_stops_the_daemon(name):
    unit = _unit(name)
    sent = signal.Signals[_one(unit, "KillSignal")]
    kept = signal.getsignal(sent), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        stop = _stop_on_signals()
        signal.getsignal(sent)(sent, None)
        assert stop.is_set()
    finally:
        for s, h in zip((sent, signal.SIGINT, signal.SIGTERM), kept):
            signal.signal(s, h)
    # The receiver is stopped before the back office, which `ticketd run` stops itself: systemd signals
    # the main process alone, and kills the rest only once the timeout is past.
    assert _one(unit, "KillMode") == "mixed"


@pytest.mark.parametrize("name", UNITS)
def test_stop_timeout_is_above_the_daemons_own_stop_budget(name, make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db")   # outbound settings at their defaults
    budget = UNITS[name][1](app)
    assert _seconds(_one(_unit(name), "TimeoutStopSec")) > budget


@pytest.mark.parametrize("name", UNITS)
def test_the_state_directory_is_writable_under_protect_system(name):
    unit = _unit(name)
    assert _one(unit, "ProtectSystem") == "strict"
    state = f"/var/lib/{_one(unit, 'StateDirectory')}"
    assert state in _one(unit, "ReadWritePaths").split()
    assert _one(unit, "WorkingDirectory") == state
    assert _one(unit, "Type") == "notify" and _one(unit, "NotifyAccess") == "main"
