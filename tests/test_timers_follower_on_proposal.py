"""A follower's words on a proposed solution leave no ticket without a timer.

PRODUCT.md "The lifecycle": a customer reply to `solution_proposed` that is
not an acceptance moves it back to `open`, recording the reason; only the
requester accepts. A Cc'd colleague's "It is still burning here." opens the
ticket: the proposal's reminder and close ("no answer to the solution we
proposed", over an objection) are cancelled, and open's respond clock runs.
Thanks or an "ok" from a colleague object to nothing: the wait goes on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.desk import build_mail, open_desk
from tests.test_timers import rules
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


def test_an_objection_from_a_follower_opens_the_ticket_and_ends_the_wait(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, agent = _proposed(desk)
        desk.reply_to(desk.last(COLLEAGUE), COLLEAGUE, "It is still burning here.\n")
        assert desk.ticket(tid)["status"] == "open"
        assert _kinds(desk.app, tid) == {"respond"}
        _age(desk.app, tid, 5)
        fire_due_timers(desk.app)
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []
        assert len(desk.events(tid, "timer_breached")) == 1   # the desk's clock, not the customer's silence
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
