"""A `database_url` ticketd cannot use is a settings error naming the key and what it takes, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli import ROOT, run_cli
from tests.conftest import write_config


def _run_with_env(config, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`ticketd ARGS --config CONFIG` with these TICKETD_ variables set (and no others of the test run)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env={**base, **env}, cwd=ROOT)


def _said(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.mark.parametrize("url", ["mysql://x/y", "postgresql://postgres@127.0.0.1/desk", "sqlite://", "desk.db"])
@pytest.mark.parametrize("args, code", [(("tickets", "list"), 1), (("status",), 3), (("run",), 1)])
def test_a_database_url_of_another_kind_is_refused_naming_what_is_accepted(tmp_path, url, args, code):
    config = write_config(tmp_path, url)

    done = run_cli(config, *args)

    assert done.returncode == code, done
    said = _said(done)
    assert "database_url must be a sqlite:///PATH or postgresql+psycopg:// URL" in said, said
    assert repr(url) in said, said
    assert not (tmp_path / "var").exists()   # nothing was started


def test_an_empty_variable_is_named_as_the_source(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")

    done = _run_with_env(config, {"TICKETD_DATABASE_URL": ""}, "tickets", "list")

    assert done.returncode == 1, done
    said = _said(done)
    assert "database_url must be a sqlite:///PATH or postgresql+psycopg:// URL" in said, said
    assert "(from TICKETD_DATABASE_URL)" in said, said


def test_a_password_in_a_refused_url_is_not_shown(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")

    done = _run_with_env(config, {"TICKETD_DATABASE_URL": "postgres://desk:s3cret@db.example.com/desk"}, "status")

    assert done.returncode == 3, done
    said = _said(done)
    assert "s3cret" not in said + done.stdout, said
    assert "postgres://desk:***@db.example.com/desk" in said, said


@pytest.mark.parametrize("args, code", [(("tickets", "list"), 1), (("status", "--json"), 2), (("run",), 1)])
def test_a_sqlite_url_naming_a_file_that_is_no_database_is_one_line(tmp_path, args, code):
    """database_url pointing at some other file (a typo, a backup archive) gave sqlite3's traceback."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database\n")
    config = write_config(tmp_path, f"sqlite:///{other}")

    done = run_cli(config, *args)

    assert done.returncode == code, done
    assert f"cannot use the database sqlite:///{other}: file is not a database" in _said(done)
    assert other.read_text() == "not a database\n"
    if "--json" in args:   # monitoring still gets its one object
        import json

        assert json.loads(done.stdout)["health"] == "critical"


def test_run_with_a_data_dir_it_cannot_make_is_one_line_and_makes_no_database(tmp_path):
    (tmp_path / "taken").write_text("a file where data_dir would be\n")
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/db/t.db")
    config.write_text(config.read_text().replace(str(tmp_path / "var"), str(tmp_path / "taken")))

    done = run_cli(config, "run")

    assert done.returncode == 1, done
    assert f"cannot make or open {tmp_path / 'taken'}: File exists; data_dir and database_url in" in _said(done)
    assert not (tmp_path / "db").exists()
