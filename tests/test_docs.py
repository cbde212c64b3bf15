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


def _setting_names(model, prefix: str = "") -> list[str]:
    """Every key of ticketd.yaml, dotted as docs/settings.md writes it (`imap[].port`)."""
    from typing import get_args

    from pydantic import BaseModel

    names = []
    for name, field in model.model_fields.items():
        nested = [t for t in (field.annotation, *get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if nested:
            listed = "[]" if get_args(field.annotation) else ""
            names.extend(_setting_names(nested[0], f"{prefix}{name}{listed}."))
        else:
            names.append(prefix + name)
    return names


def test_every_setting_is_in_the_settings_reference():
    from ticketd.settings import Settings

    reference = (ROOT / "docs" / "settings.md").read_text()
    names = _setting_names(Settings)
    assert "imap[].starttls" in names and "outbound.retry_base_seconds" in names   # the walk reaches nested keys
    assert [n for n in names if f"`{n}`" not in reference] == []
