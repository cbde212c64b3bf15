"""A proposed solution's warn / close clock counts from the agent's latest words to the customer.

docs/rules.md: `solution_proposed` with `warn_after` / `close_after` reminds,
then closes, "as waiting_customer does", and waiting_customer's silence counts
from the agent's last question. A revised proposal (or any public reply) on a
ticket still in `solution_proposed` is a new thing for the customer to answer:
closing it hours later for "no answer to the solution we proposed" is wrong.
"""

from __future__ import annotations

from datetime import timedelta

from tests.desk import build_mail, open_desk
from tests.test_timers import rules
from ticketd.clock import utcnow
from ticketd.store.tables import timers
from ticketd.timers import armed, fire_due_timers

CUSTOMER = "cust@example.org"


def _rules() -> str:
    return rules().replace("  in_development:", "  solution_proposed: {warn_after: 3d, close_after: 4d}\n"
                                                 "  in_development:")


def _age(app, ticket_id: int, days: float) -> None:
    """Let `days` pass for the ticket's armed timers: each falls due that much sooner."""
    with app.engine.begin() as conn:
        for row in armed(conn, ticket_id):
            conn.execute(timers.update().where(timers.c.id == row["id"])
                         .values(due_at=row["due_at"] - timedelta(days=days)))


def _proposed_long_ago(desk) -> tuple[int, str]:
    """A ticket whose proposal went out 3.5 days ago (its warning due, its close half a day away)."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    agent = desk.assign(tid)
    desk.send(build_mail(agent, "#propose\nRestart the printer.\n", to=desk.agent_address(tid, agent),
                         subject=f"Re: [#{tid}] Printer"))
    assert desk.ticket(tid)["status"] == "solution_proposed"
    _age(desk.app, tid, 3.5)
    return tid, agent


def test_a_revised_proposal_starts_the_wait_again(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, agent = _proposed_long_ago(desk)
        desk.send(build_mail(agent, "#propose\nReplace the fuser instead.\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        assert desk.ticket(tid)["status"] == "solution_proposed"
        assert fire_due_timers(desk.app) == 0       # no reminder about the old proposal
        with desk.app.engine.connect() as conn:
            due = {t["kind"]: t["due_at"] for t in armed(conn, tid)}
        assert set(due) == {"warn", "close"}
        assert due["warn"] > utcnow() + timedelta(days=2, hours=23)
        assert due["close"] > utcnow() + timedelta(days=3, hours=23)
    finally:
        desk_gen.close()


def test_a_public_reply_on_a_proposal_starts_the_wait_again_and_a_note_does_not(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, agent = _proposed_long_ago(desk)
        desk.send(build_mail(agent, "#note\nThey never answer.\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        with desk.app.engine.connect() as conn:
            before = {t["kind"]: t["id"] for t in armed(conn, tid)}
        assert set(before) == {"warn", "close"}   # a note asks the customer nothing
        desk.send(build_mail(agent, "Did restarting it help?\n", to=desk.agent_address(tid, agent),
                             subject=f"Re: [#{tid}] Printer"))
        assert desk.ticket(tid)["status"] == "solution_proposed"
        assert fire_due_timers(desk.app) == 0
        with desk.app.engine.connect() as conn:
            after = {t["kind"]: t["id"] for t in armed(conn, tid)}
        assert set(after) == {"warn", "close"} and not set(after.values()) & set(before.values())
    finally:
        desk_gen.close()
