"""A ticket opened by automatic mail runs no respond clock: nobody waits there for an answer.

docs/rules.md: `respond_within` counts from the customer's mail that waits
for an answer, and an auto-generated mail (PRODUCT.md "Loops and robots")
waits for none: no reply is ever sent to it. With a clock all the same, on
`on_breach: reassign` the ticket went round the group for ever, every agent
told every `respond_within`: with no waiting mail there was no wait in which
an agent "already missed it", so each breach handed it back to the agent
before (docs/rules.md: once everyone available missed it, it stays).
"""

from __future__ import annotations

from tests.desk import build_mail, make_due, open_desk
from tests.test_timers import rules
from ticketd.timers import armed, fire_due_timers


def test_a_robots_ticket_is_not_handed_round_the_group_for_ever(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1h"))
    desk = next(desk_gen)
    try:
        desk.send(build_mail("monitor@example.org", "Disk /var is 95% full.\n", subject="ALERT disk",
                             Auto_Submitted="auto-generated"))
        tid = desk.ticket()["id"]
        assert desk.assign(tid) is not None
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == []
        for _ in range(3):   # whatever a clock would have done, no round of it
            make_due(desk.app, tid)
            fire_due_timers(desk.app)
        assignments = [e["to_value"] for e in desk.events(tid, "assigned")]
        assert len(assignments) == 1, assignments
        assert desk.events(tid, "timer_breached") == []
    finally:
        desk_gen.close()


def test_a_persons_new_ticket_still_runs_its_clock(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1h"))
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == ["respond"]
    finally:
        desk_gen.close()
