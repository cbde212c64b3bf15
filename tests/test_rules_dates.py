"""Dates in rules.yaml: YAML's timestamps are never built, so a bad one is a located error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest

from tests.conftest import MINIMAL_RULES
from ticketd.rules_file import load_rules_text

HOURS = """\
business_hours:
  timezone: Europe/Berlin
  week: {mon: "09:00-17:00"}
  holidays: [%s]
"""


def _check(tmp_path, text: str) -> subprocess.CompletedProcess:
    """`ticketd rules check FILE` in a fresh interpreter, as an admin runs it."""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", "rules", "check", str(path)], capture_output=True,
                          text=True, timeout=60, env=env, cwd=tmp_path)


@pytest.mark.parametrize("holiday, why", [("2026-13-01", "month must be in 1..12"),
                                          ("2026-02-30", "day is out of range for month"),
                                          ("2026-12-24T10:00:00", "write a date as YYYY-MM-DD")])
def test_an_impossible_holiday_is_a_located_error(tmp_path, holiday, why):
    lines = MINIMAL_RULES.count("\n")
    done = _check(tmp_path, MINIMAL_RULES + HOURS % f"2026-12-25, {holiday}")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    where = f"{tmp_path / 'rules.yaml'}:{lines + 4}:26: business_hours.holidays[1]: "
    said = done.stdout + done.stderr
    assert where in said, said
    line = next(x for x in said.splitlines() if x.startswith(where))
    assert repr(holiday) in line and why in line and "YYYY-MM-DD" in line, line


def test_a_date_shaped_name_or_pattern_is_text(tmp_path):
    text = MINIMAL_RULES.replace("name: everything else", "name: 2026-13-01").replace(
        '"(?i)invoice|refund"', "2026-02-30")
    done = _check(tmp_path, text)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = load_rules_text(text)
    assert rules.routes[1].name == "2026-13-01"


def test_a_date_as_a_duration_is_named_as_written(tmp_path):
    text = MINIMAL_RULES.replace("respond_within: 4h", "respond_within: 2026-01-01", 1)
    assert text != MINIMAL_RULES
    done = _check(tmp_path, text)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "'2026-01-01' is not a duration" in said and "datetime" not in said, said


def test_holidays_are_still_dates(tmp_path):
    rules = load_rules_text(MINIMAL_RULES + HOURS % "2026-12-24, '2026-12-25'")
    assert rules.business_hours.holidays == frozenset({date(2026, 12, 24), date(2026, 12, 25)})
