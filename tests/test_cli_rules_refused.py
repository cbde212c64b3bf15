"""A valid rules.yaml the running daemon refused (no agents where it has some) is not what the CLI acts by.

The daemon keeps its agents and notes the refusal under data_dir; the
commands that change the desk by the rules refuse, and those that only
list say on stderr that the file is not in force. No daemon running, or a
file saved since that it has not looked at yet, is acted on as it stands.
Each test runs a real `ticketd run` and the real command line.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.conftest import MINIMAL_RULES
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, receive
from tests.test_outbound import outbound_yaml
from tests.waiting import eventually
from ticketd.rules_in_force import rules_in_force

BOB = "bob@example.com"
WITHOUT_AGENTS = "agents: []\nroutes:\n  - {name: all, then: {priority: high}}\n"
REFUSED = ("as saved is not in force: the running daemon refused it (it names no agents, and the 3 in force "
           "would lose every open ticket) and keeps the rules it loaded before")


@pytest.fixture
def desk(tmp_path, sqlite_url, make_app, sink, processes):
    """A running daemon with three agents and a ticket, and then a rules.yaml without agents saved, which it
    refused."""
    app = make_app(sqlite_url, rules=MINIMAL_RULES, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    receive(app, customer_mail())   # ticket 1
    daemon = DaemonProcess(tmp_path / "ticketd.yaml").start()
    processes.append(daemon)
    (tmp_path / "rules.yaml").write_text(WITHOUT_AGENTS)
    assert eventually(lambda: "names no agents" in daemon.output(), timeout=20), daemon.output()
    # The note under data_dir follows the log line: once `agents list` warns, it is there.
    assert eventually(lambda: "refused it" in run_cli(tmp_path / "ticketd.yaml", "agents", "list").stderr, timeout=5)
    return daemon


# The commands that change the desk by the rules (each refused before it looks at its arguments).
ACTING = [
    ("tickets", "assign", "1", BOB),
    ("tickets", "close", "1"),
    ("tickets", "follow", "1", "dan@example.org"),
    ("agents", "away", BOB),
    ("forget", BOB, "--yes"),
    ("quarantine", "retry", "--all"),
]


def test_a_command_that_acts_by_the_rules_refuses_the_file_the_daemon_refused(desk, tmp_path):
    """Before, `forget` offered to erase Bob (and with --yes did), whom the daemon still gives tickets to."""
    for command in ACTING:
        done = run_cli(tmp_path / "ticketd.yaml", *command)
        assert done.returncode == 1, (command, done)
        [line] = done.stderr.splitlines()
        assert line == (f"Error: {tmp_path / 'rules.yaml'} {REFUSED}. This command acts by the rules the daemon "
                        "follows: fix the file, or restart the daemon with it (`ticketd status` tells when it is "
                        "in force)"), command
        assert "not an agent" not in done.stderr and "forgotten" not in done.stdout


def test_listing_the_agents_goes_on_saying_the_file_is_not_in_force(desk, tmp_path):
    done = run_cli(tmp_path / "ticketd.yaml", "agents", "list")
    assert done.returncode == 0 and done.stdout == "", done
    assert done.stderr == (f"warning: {tmp_path / 'rules.yaml'} {REFUSED}; this lists the file as saved\n")


def test_a_file_saved_since_or_no_daemon_running_is_acted_on_as_it_stands(desk, tmp_path):
    """The note names the refused file's digest: another file saved after it (the daemon has not looked yet)
    is not held to it, nor is any file once the daemon is gone."""
    config = tmp_path / "ticketd.yaml"
    paused = _tree(desk.proc.pid)   # the back office, a child process, watches the file
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)   # running, but not looking at the file
    try:
        (tmp_path / "rules.yaml").write_text(WITHOUT_AGENTS + "# another edit\n")
        done = run_cli(config, "agents", "away", BOB)
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    assert done.returncode == 1 and "is not an agent in" in done.stderr and "refused" not in done.stderr, done
    first = hashlib.sha256(WITHOUT_AGENTS.encode()).hexdigest()
    assert eventually(lambda: rules_in_force(tmp_path / "var").refused.digest != first, timeout=20)
    assert "refused it" in run_cli(config, "agents", "away", BOB).stderr   # once looked at, refused too

    desk.terminate()
    done = run_cli(config, "agents", "list")
    assert done.returncode == 0 and done.stderr == "", done
    done = run_cli(config, "agents", "away", BOB)
    assert done.returncode == 1 and "is not an agent in" in done.stderr and "refused" not in done.stderr, done


def _tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.extend(_tree(int(child)))
    return found


def test_the_file_mended_is_acted_on_again(desk, tmp_path):
    (tmp_path / "rules.yaml").write_text(MINIMAL_RULES.replace("Alice", "Alice Liddell"))
    assert eventually(lambda: "rules reloaded" in desk.output(), timeout=20), desk.output()
    listed = eventually(lambda: run_cli(tmp_path / "ticketd.yaml", "agents", "list").stderr == "", timeout=5)
    assert listed, "the note still names the refused file"
    done = run_cli(tmp_path / "ticketd.yaml", "agents", "away", BOB)
    assert done.returncode == 0 and done.stdout.startswith(f"{BOB} is away until"), done
