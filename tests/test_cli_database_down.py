"""A database the command cannot reach is one clear line naming it, never a driver's traceback."""

from __future__ import annotations

import pytest

from tests.cli import run_cli
from tests.conftest import PG_ADMIN_URL, free_port, write_config


@pytest.mark.parametrize("args", [("status",), ("tickets", "list"), ("quarantine", "list"), ("run",),
                                  ("worker",)])
def test_a_stopped_server_is_named_in_one_line(tmp_path, args):
    url = f"postgresql+psycopg://ticketd:s3cret@127.0.0.1:{free_port()}/desk"
    config = write_config(tmp_path, url, extra="redis_url: redis://127.0.0.1:6379/14\n" if args == ("worker",)
                          else "")

    done = run_cli(config, *args)

    assert done.returncode == (2 if args == ("status",) else 1)   # status: critical, as a monitoring check
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, done.stderr
    assert "cannot use the database postgresql+psycopg://ticketd:***@127.0.0.1:" in error[0]
    assert "Connection refused" in done.stderr, done.stderr


def test_a_database_that_does_not_exist_says_so(tmp_path):
    config = write_config(tmp_path, PG_ADMIN_URL.rsplit("/", 1)[0] + "/no_such_desk_database")

    done = run_cli(config, "status")

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert 'database "no_such_desk_database" does not exist' in done.stderr, done.stderr


def test_a_server_that_takes_the_connection_and_never_answers_is_given_up_on_within_seconds(tmp_path):
    """A hung server (or a proxy whose backend is gone) held `status`, and a 451, for two minutes."""
    import socket
    import time

    from ticketd.store.db import PG_CONNECT_TIMEOUT_SECONDS

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)      # the kernel completes each handshake; nobody ever reads or writes
        url = f"postgresql+psycopg://ticketd@127.0.0.1:{silent.getsockname()[1]}/desk"
        config = write_config(tmp_path, url)
        began = time.monotonic()
        done = run_cli(config, "status")
        took = time.monotonic() - began
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot use the database" in done.stderr and "timeout" in done.stderr, done.stderr
    assert took < PG_CONNECT_TIMEOUT_SECONDS + 20, took


def test_a_worker_with_no_threads_is_refused(tmp_path):
    config = write_config(tmp_path, "sqlite:///" + str(tmp_path / "t.db"), extra="redis_url: redis://127.0.0.1:6379/14\n")
    done = run_cli(config, "worker", "--threads", "0")
    assert done.returncode == 2 and "--threads" in done.stderr and "0 is not in the range x>=1" in done.stderr
