"""`ticketd status` tells timers a quarantined reply holds from timers the sweep fell behind on.

A warn or close held by a customer's reply in quarantine (ticketd/quarantined_reply.py)
is due and waits on purpose; counted as overdue, it read as a sweep that had stopped.
"""

from __future__ import annotations

import json

from tests.cli import cli_ok, run_cli
from tests.desk import open_desk
from tests.test_timers import rules
from tests.test_timers_quarantined_reply import CUSTOMER, LIMITS, _overdue, _quarantined, _too_deep, _waiting


def _status(config, *args: str) -> str:
    """What `ticketd status` prints; no daemon runs here, so it exits 2 (critical)."""
    done = run_cli(config, "status", *args)
    assert done.returncode == 2, done.stderr
    return done.stdout


def test_status_counts_held_timers_apart_from_overdue_ones(make_app, db_url, tmp_path):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        tid, _ = _waiting(desk)
        raw_id = _quarantined(desk, CUSTOMER, _too_deep(CUSTOMER, f"Re: [#{tid}] Printer on fire"))
        _overdue(desk, tid)   # its warn and close
        config = tmp_path / "ticketd.yaml"

        timers = json.loads(_status(config, "--json"))["timers"]
        assert (timers["overdue"], timers["held"]) == (0, 2)
        assert "overdue 0, held by quarantined replies 2" in _status(config)

        cli_ok(config, "quarantine", "dismiss", str(raw_id))   # it answers nothing: they are due like any
        timers = json.loads(_status(config, "--json"))["timers"]
        assert (timers["overdue"], timers["held"]) == (2, 0)
        assert "held by" not in _status(config)
    finally:
        desk_gen.close()
