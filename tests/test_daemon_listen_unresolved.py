"""`ticketd run` on an smtp.listen whose host does not resolve: one line and exit 1, before any back office runs."""

from __future__ import annotations

from tests.cli import run_cli
from tests.conftest import free_port, write_config


def test_a_listen_host_that_does_not_resolve_says_so_and_starts_nothing(tmp_path):
    listen = f"receiver.invalid:{free_port()}"   # .invalid never resolves (RFC 6761)
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"smtp:\n  listen: {listen}\n")

    done = run_cli(config, "run", timeout=30)

    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "Traceback" not in said, said
    [line] = [x for x in said.splitlines() if listen in x]
    assert "cannot listen on smtp.listen" in line and "no name this machine resolves" in line, line
    # Nothing of the back office ran: its timers and sweeps would have, with no receiver.
    assert "back office" not in said and "ticketd running" not in said, said
