"""Round robin goes on where it was when a reload takes the group's last agent out of it.

The cursor names the last agent given a ticket; when a reload removes that
agent (from the file, or from the group), the rotation must go on with the
agent who came after them, not start again at the top: that gave the first
agent two tickets in a row and skipped the next one (PRODUCT.md: round robin).
"""

from __future__ import annotations

from sqlalchemy import select

from ticketd.assignment import assign
from ticketd.clock import utcnow
from ticketd.domain.assignment import kept_place
from ticketd.domain.rules import Agent
from ticketd.rules_watch import reload
from ticketd.store import tickets as store
from ticketd.store.tables import tickets

FOUR = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]}
  - {email: a2@example.com, name: A2, groups: [support]}
  - {email: a3@example.com, name: A3, groups: [support]}
  - {email: a4@example.com, name: A4, groups: [support]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""
A2 = "  - {email: a2@example.com, name: A2, groups: [support]}\n"


def _assign_new(app, n: int) -> list[str]:
    """Open n tickets in support and assign each in turn; their agents, in order."""
    now = utcnow()
    with app.engine.begin() as conn:
        ids = [store.create_ticket(conn, subject=f"t{i}", status="new", requester=f"c{i}@example.org",
                                   group_name="support", created_at=now, updated_at=now) for i in range(n)]
    for ticket_id in ids:
        assign(app, ticket_id)
    return _assignees(app, ids)


def _assignees(app, ids: list[int]) -> list[str]:
    with app.engine.connect() as conn:
        by_id = dict(conn.execute(select(tickets.c.id, tickets.c.assignee).where(tickets.c.id.in_(ids))).all())
    return [by_id[ticket_id] for ticket_id in ids]


def test_removing_the_last_agent_given_a_ticket_goes_on_with_the_next(make_app, db_url, tmp_path):
    app = make_app(db_url, rules=FOUR)
    assert _assign_new(app, 2) == ["a1@example.com", "a2@example.com"]
    with app.engine.connect() as conn:
        [of_a2] = conn.execute(select(tickets.c.id).where(tickets.c.assignee == "a2@example.com")).scalars()

    (tmp_path / "rules.yaml").write_text(FOUR.replace(A2, ""))
    assert reload(app) is True

    # a2's open ticket goes back to the group (docs/rules.md): to the one after a2, as every one after it.
    assert _assignees(app, [of_a2]) == ["a3@example.com"]
    assert _assign_new(app, 3) == ["a4@example.com", "a1@example.com", "a3@example.com"]


def test_moving_the_last_agent_to_another_group_goes_on_with_the_next(make_app, db_url, tmp_path):
    app = make_app(db_url, rules=FOUR)
    assert _assign_new(app, 2) == ["a1@example.com", "a2@example.com"]

    (tmp_path / "rules.yaml").write_text(FOUR.replace(A2, A2.replace("[support]", "[billing]")))
    assert reload(app) is True

    assert _assign_new(app, 2) == ["a3@example.com", "a4@example.com"]


def _agents(*names: str) -> tuple[Agent, ...]:
    return tuple(Agent(email=f"{n}@example.com", name=n) for n in names)


def test_kept_place_names_the_nearest_member_before_the_one_who_left():
    before = _agents("a1", "a2", "a3", "a4")
    assert kept_place(before, _agents("a1", "a3", "a4"), "a2@example.com") == "a1@example.com"
    # The ones before left too: the nearest one still there, going round.
    assert kept_place(before, _agents("a3", "a4"), "a2@example.com") == "a4@example.com"
    assert kept_place(before, _agents("a3"), "a2@example.com") == "a3@example.com"
    # Nothing to move: the last agent is still a member, or nobody is left, or nobody was ever given one.
    assert kept_place(before, _agents("a1", "a2"), "a2@example.com") is None
    assert kept_place(before, (), "a2@example.com") is None
    assert kept_place(before, before, None) is None
    # Unknown to the rules before too (an edit made while the daemon was stopped): from the top, as ever.
    assert kept_place(_agents("a1"), _agents("a3"), "a2@example.com") is None
