"""A second `#postpone` (or `#dev`) moves the wake-up (or due date) and nothing else.

PRODUCT.md: `#postpone` sets status `postponed` until then; on a ticket
already postponed it changes the wake-up time only, the status stays. The
respond clock of a customer who waits counts from their mail (docs/rules.md
respond_within: a note or a commands-only mail does not stop it), so an
agent who pushes the wake-up back again and again without answering must not
win a whole new `respond_within` each time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.store.tables import timers
from ticketd.timers import armed

CUSTOMER = "cust@example.org"
RULES = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
timers:
  new:            {respond_within: 2h, on_breach: notify}
  postponed:      {respond_within: 2h, on_breach: notify}
  in_development: {respond_within: 2h, on_breach: notify, remind_before: 1d}
"""


def _armed(desk, tid: int) -> dict[str, list]:
    with desk.app.engine.connect() as conn:
        found: dict[str, list] = {}
        for row in armed(conn, tid):
            found.setdefault(row["kind"], []).append(row["due_at"])
        return found


@pytest.mark.parametrize("first, again, kind", [
    ("#postpone 3d", "#postpone 5d", "wake"),
    ("#dev carol PRJ-1 10d", "#dev carol PRJ-1 20d", "due"),
])
def test_a_new_date_keeps_the_running_respond_clock(make_app, db_url, first, again, kind):
    desk_gen = open_desk(make_app, db_url, rules=RULES)
    desk = next(desk_gen)
    try:
        desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        agent = desk.assign(tid)
        to = desk.agent_address(tid, agent)
        desk.send(build_mail(agent, f"{first}\n", to=to, subject=f"Re: [#{tid}] Printer"))
        # The customer's mail still waits for an answer: the status's clock runs, an hour of it gone.
        with desk.app.engine.begin() as conn:
            for row in armed(conn, tid):
                if row["kind"] == "respond":
                    conn.execute(timers.update().where(timers.c.id == row["id"])
                                 .values(due_at=row["due_at"] - timedelta(hours=1)))
        before = _armed(desk, tid)
        assert len(before["respond"]) == 1

        desk.send(build_mail(agent, f"{again}\n", to=to, subject=f"Re: [#{tid}] Printer"))
        after = _armed(desk, tid)
        assert after["respond"] == before["respond"]   # still due an hour from now, not two
        assert after["respond"][0] < utcnow() + timedelta(hours=1, minutes=5)
        assert max(after[kind]) > max(before[kind]) + timedelta(days=2)   # the date moved
        assert len(after[kind]) == len(before[kind])
    finally:
        desk_gen.close()
