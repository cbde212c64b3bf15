"""A key file an earlier version left under data_dir that cannot be used: one line saying what to do, no traceback.

Earlier versions kept the signing key in data_dir/secret_key; an empty file
(a disk that filled while it was written, a `touch`) or one of other bytes
made every command that opens the desk end in a traceback.
"""

from __future__ import annotations

import pytest

from tests.cli import run_cli
from tests.conftest import write_config
from ticketd.signing_key import KEY_FILE
from ticketd.store.db import ensure_schema, make_engine


@pytest.mark.parametrize("content, said", [(b"", "is empty"), (b"\xff\xfe key", "bytes beyond ASCII")])
@pytest.mark.parametrize("command", [("agents", "list"), ("run",)])
def test_an_unusable_key_file_is_one_line_saying_what_to_do(tmp_path, sqlite_url, content, said, command):
    config = write_config(tmp_path, sqlite_url, extra="secret_key: change-me\n")
    engine = make_engine(sqlite_url)
    ensure_schema(engine)   # a desk that ran before, as one with such a file did
    engine.dispose()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / KEY_FILE).write_bytes(content)

    done = run_cli(config, *command)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert said in line and "delete it, or set secret_key" in line and str(tmp_path / "var" / KEY_FILE) in line
