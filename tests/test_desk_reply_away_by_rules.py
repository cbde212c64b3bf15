"""An agent rules.yaml marks `away: true` is never told by their desk address that they take new tickets."""

from __future__ import annotations

import pytest

from ingest.match import desk_address
from tests.desk import body_text, build_mail, open_desk

CAROL = "carol@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [support], away: true}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def _answer(desk, body: str) -> tuple[str, str]:
    address = desk_address(desk.app.signer, desk.app.settings.support_address, CAROL)
    desk.send(build_mail(CAROL, body, to=address, subject="desk"))
    answer = desk.last(CAROL)
    return str(answer["Subject"]), body_text(answer).replace("\r\n", "\n")


@pytest.mark.parametrize("body", ["Where do I stand?\n", "#back\n"])
def test_away_by_rules_alone_is_told_so(desk, body):
    subject, text = _answer(desk, body)
    assert subject == "You are away (rules.yaml)"
    assert "You take new tickets" not in text
    assert "rules.yaml marks you away" in text and "only an admin changes that" in text


def test_back_from_an_own_absence_while_rules_say_away_takes_nothing_yet(desk):
    _answer(desk, "#away 3d\n")
    subject, text = _answer(desk, "#back\n")
    assert subject == "You are away (rules.yaml)"
    assert "Welcome back: your absence is over." in text
    assert "You take new tickets" not in text and "rules.yaml marks you away" in text
