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
