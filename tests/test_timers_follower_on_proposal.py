"""A follower's words on a proposed solution stop its reminder and auto-close until an agent answers.

PRODUCT.md: only the requester accepts or rejects a proposal, so a Cc'd
colleague's "It is still burning here." leaves `solution_proposed` as it is.
But the customer side has spoken and waits for the desk: closing the ticket
days later for "no answer to the solution we proposed", over an objection
nobody answered, is wrong. The wait starts again with the agent's next public
reply (docs/rules.md: the silence counts from the agent's latest public
words). Thanks or an "ok" from a colleague object to nothing: the wait goes on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.desk import build_mail, open_desk
from tests.test_timers import rules
from ticketd.clock import utcnow
from ticketd.store.tables import timers
from ticketd.timers import armed, fire_due_timers

CUSTOMER, COLLEAGUE = "cust@example.org", "boss@example.org"


def _rules() -> str:
    return rules().replace("  in_development:", "  solution_proposed: {warn_after: 3d, close_after: 4d}\n"
                                                 "  in_development:")


def _age(app, ticket_id: int, days: float) -> None:
    with app.engine.begin() as conn:
        for row in armed(conn, ticket_id):
            conn.execute(timers.update().where(timers.c.id == row["id"])
                         .values(due_at=row["due_at"] - timedelta(days=days)))


def _kinds(app, ticket_id: int) -> set[str]:
    with app.engine.connect() as conn:
        return {t["kind"] for t in armed(conn, ticket_id)}


def _proposed(desk) -> tuple[int, str]:
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=COLLEAGUE))
    tid = desk.ticket()["id"]
    agent = desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "#propose\nRestart the printer.\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert {"warn", "close"} <= _kinds(desk.app, tid)
    return tid, agent


def test_an_objection_from_a_follower_holds_the_close_until_an_agent_answers(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, agent = _proposed(desk)
        desk.reply_to(desk.last(COLLEAGUE), COLLEAGUE, "It is still burning here.\n")
        assert desk.ticket(tid)["status"] == "solution_proposed"   # the proposal stands
        assert not {"warn", "close"} & _kinds(desk.app, tid)
        _age(desk.app, tid, 5)
        fire_due_timers(desk.app)
        assert desk.ticket(tid)["status"] == "solution_proposed"
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []

        desk.reply_to(desk.last(agent), agent, "Pull the plug first, then restart it.\n")
        with desk.app.engine.connect() as conn:
            due = {t["kind"]: t["due_at"] for t in armed(conn, tid)}
        assert due["warn"] > utcnow() + timedelta(days=2, hours=23)
        assert due["close"] > utcnow() + timedelta(days=3, hours=23)
    finally:
        desk_gen.close()


@pytest.mark.parametrize("said", ["Thanks!\n", "OK\n"])
def test_thanks_from_a_follower_leave_the_wait_running(make_app, db_url, said):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, _ = _proposed(desk)
        desk.reply_to(desk.last(COLLEAGUE), COLLEAGUE, said)
        assert {"warn", "close"} <= _kinds(desk.app, tid)
        _age(desk.app, tid, 5)
        assert fire_due_timers(desk.app) == 1            # the warning; it gives a whole day yet
        assert len(desk.events(tid, "waiting_reminder")) == 1
        _age(desk.app, tid, 2)
        assert fire_due_timers(desk.app) == 1
        assert desk.ticket(tid)["status"] == "closed"
        assert len(desk.events(tid, "auto_closed")) == 1
    finally:
        desk_gen.close()
