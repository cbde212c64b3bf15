"""`ticketd agents`: an admin's `away --until` is bounded as an agent's `#away` is; `list` shows desk addresses."""

from __future__ import annotations

import pytest

from ingest.match import desk_address
from tests.cli import cli_ok, run_cli
from ticketd.store.tables import agent_absences

ALICE, BOB = "alice@example.com", "bob@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [support, billing], timezone: Asia/Tokyo}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(sqlite_url, rules=RULES)


def _absences(app) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(agent_absences.select()).mappings()]


@pytest.mark.parametrize("until", ["99999d", "3650d 1s", "2099-01-15", "9999-12-31T23:00-05:00"])
def test_an_absence_too_far_ahead_is_refused_naming_the_bound(app, tmp_path, until):
    """docs/rules.md: a written date lies at most 3650d ahead; `99999d` is a duration, only too long."""
    refused = run_cli(tmp_path / "ticketd.yaml", "agents", "away", BOB, "--until", until)
    assert refused.returncode != 0
    assert f"{until!r} is too far ahead: dates are taken at most 3650d (10 years) ahead" in refused.stderr
    assert "Asia/Tokyo" in refused.stderr                 # the latest time to write, in Bob's zone
    assert "not a duration" not in refused.stderr
    assert _absences(app) == []


def test_an_absence_within_the_bound_is_set(app, tmp_path):
    said = cli_ok(tmp_path / "ticketd.yaml", "agents", "away", ALICE, "--until", "3650d")
    assert said.startswith(f"{ALICE} is away until ")
    assert [a["agent"] for a in _absences(app)] == [ALICE]
    refused = run_cli(tmp_path / "ticketd.yaml", "agents", "away", ALICE, "--until", "soon")
    assert refused.returncode != 0 and "'soon' is not a duration or an ISO date" in refused.stderr


def test_the_list_shows_each_agents_desk_address(app, tmp_path):
    lines = cli_ok(tmp_path / "ticketd.yaml", "agents", "list").splitlines()
    assert len(lines) == 2
    for line, agent in zip(lines, (ALICE, BOB), strict=True):
        assert line.startswith(agent)
        assert desk_address(app.signer, "support@example.com", agent) in line.split()


def test_back_for_an_agent_rules_yaml_marks_away_says_they_stay_away(make_app, sqlite_url, tmp_path):
    app = make_app(sqlite_url, rules=RULES.replace("timezone: Asia/Tokyo}", "timezone: Asia/Tokyo, away: true}"))
    config = tmp_path / "ticketd.yaml"
    cli_ok(config, "agents", "away", BOB)
    said = cli_ok(config, "agents", "back", BOB)
    assert said == (f"{BOB}'s own absence is over, but {tmp_path / 'rules.yaml'} marks them away (away: true): "
                    "they take no new tickets until that is changed there\n")
    assert "takes new tickets" not in said
    assert _absences(app) == []
    [bob] = [line for line in cli_ok(config, "agents", "list").splitlines() if line.startswith(BOB)]
    assert "away (rules.yaml)" in bob
    assert cli_ok(config, "agents", "back", ALICE).startswith(f"{ALICE} takes new tickets again")
