"""`ticketd templates check` names a file under canned/ that `#canned` can never use, as it names a misspelt
template: `canned/Refund.txt` was passed as OK while every agent's `#canned refund` was refused."""

from __future__ import annotations

from tests.cli import run_cli
from tests.conftest import write_config


def test_a_file_under_canned_that_is_no_saved_reply_is_named(tmp_path, sqlite_url):
    overrides = tmp_path / "overrides"
    (overrides / "canned" / "old").mkdir(parents=True)
    for name in ("Refund.txt", "need more info.txt", "thanks.md", "old/sorry.txt", "good-one.txt"):
        (overrides / "canned" / name).write_text("Hello {{ agent_name }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0, done.stderr   # a stray file breaks no mail: said, not refused
    lines = done.stdout.splitlines()
    for name in ("canned/Refund.txt", "canned/need more info.txt", "canned/thanks.md", "canned/old/sorry.txt"):
        assert any(line.startswith(f"{name}: not a saved reply") for line in lines), (name, lines)
    assert any("did you mean canned/refund.txt?" in line for line in lines if line.startswith("canned/Refund.txt"))
    assert not any("good-one" in line for line in lines)
    assert "OK: " in done.stdout and "2 saved replies render" in done.stdout   # good-one and the shipped one
