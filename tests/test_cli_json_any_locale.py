"""The CLI's JSON, and its lines, under a terminal whose encoding cannot carry every subject (latin-1, ascii).

Python writes stdout in the locale's encoding; a subject in Chinese or with
an em dash failed the whole `tickets list --json` with a traceback and
printed nothing, for a desk whose customers write in many languages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli import ROOT
from tests.conftest import write_config
from ticketd.clock import utcnow
from ticketd.store import tickets as store

SUBJECT = "Rechnung prüfen — 你好"


def _ticketd(config, encoding: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    env["PYTHONIOENCODING"] = encoding   # as a terminal in that locale has it
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args, "--config", str(config)], capture_output=True,
                          timeout=60, env=env, cwd=ROOT)


@pytest.mark.parametrize("encoding", ["latin-1", "ascii", "utf-8"])
def test_json_reads_the_same_whatever_the_terminal_encoding(tmp_path, sqlite_url, make_app, encoding):
    app = make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject=SUBJECT, status="new", requester="zoe@example.org",
                                        created_at=now, updated_at=now)

    for args in (("tickets", "list", "--json"), ("tickets", "show", str(ticket_id), "--json")):
        done = _ticketd(config, encoding, *args)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        # JSON exchanged is UTF-8 (RFC 8259, 8.1), which `jq` reads: the bytes decode as UTF-8 in any case.
        shown = json.loads(done.stdout.decode("utf-8"))
        assert (shown[0] if isinstance(shown, list) else shown)["subject"] == SUBJECT
        assert done.stdout.decode(encoding)   # and read in the terminal's own encoding, not garbled into errors


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_lines_show_what_the_terminal_can_and_go_on(tmp_path, sqlite_url, make_app, encoding):
    app = make_app(sqlite_url)
    config = write_config(tmp_path, sqlite_url)
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject=SUBJECT, status="new", requester="zoe@example.org",
                                        created_at=now, updated_at=now)

    for args in (("tickets", "list"), ("tickets", "show", str(ticket_id))):
        done = _ticketd(config, encoding, *args)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        # click writes UTF-8 where the terminal says ascii (taken for a misconfigured locale); latin-1 is taken as is.
        shown = done.stdout.decode(encoding, errors="replace")
        assert f"[#{ticket_id}]" in shown and "Rechnung pr" in shown
