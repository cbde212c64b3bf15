"""The examples admins copy from the docs are valid as written."""

from __future__ import annotations

from pathlib import Path

from ticketd.rules_file import load_rules_text

ROOT = Path(__file__).resolve().parents[1]


def test_rules_reference_example_validates():
    text = (ROOT / "docs" / "rules.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = load_rules_text(example, "docs/rules.md")
    assert [a.email for a in rules.agents] == ["alice@example.com", "bob@example.com"]
    assert rules.groups["billing"].assign == "least_open"
    assert rules.timers["waiting_customer"].close_after == 4 * 86400


def test_shipped_rules_file_validates():
    rules = load_rules_text((ROOT / "rules.yaml").read_text(), "rules.yaml")
    assert {a.email for a in rules.agents if not a.away} == {"alice@example.com", "bob@example.com"}
