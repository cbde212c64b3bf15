"""A reply that has arrived but is not processed yet holds the timers it may answer.

PRODUCT.md: waiting_customer warns, then closes, when the customer is silent.
A customer whose answer was taken (250 over SMTP, committed to raw_mail)
just before the closing time has not been silent: closing the ticket "with
no answer" while that answer waits in line, then reopening it a moment
later, tells them the opposite of what happened. Mail that came after the
due time holds nothing, so a desk that always has mail in flight still
warns and closes.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta

from sqlalchemy import select

from tests.desk import build_mail, open_desk
from tests.test_timers import rules
from ticketd.clock import utcnow
from ticketd.pipeline import drain
from ticketd.store.tables import raw_mail, timers
from ticketd.timers import armed, fire_due_timers

CUSTOMER = "cust@example.org"


def _waiting(desk) -> tuple[int, str]:
    """A ticket an agent put in waiting_customer with a question."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    agent = desk.assign(tid)
    desk.send(build_mail(agent, "#status waiting_customer\nWhich model is it?\n", to=desk.agent_address(tid, agent),
                         subject=f"Re: [#{tid}] Printer"))
    assert desk.ticket(tid)["status"] == "waiting_customer"
    return tid, agent


def _arrives(desk, tid: int, body: str) -> None:
    """The customer's reply taken over SMTP and committed, not processed yet."""
    msg = build_mail(CUSTOMER, body, subject=f"Re: [#{tid}] Printer on fire")
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        assert client.send_message(msg, to_addrs=["support@example.com"]) == {}
    with desk.app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.state).order_by(raw_mail.c.id.desc()).limit(1)).scalar_one() == \
            "received"


def _due_now(desk, tid: int, *kinds: str) -> None:
    """The ticket's armed timers of `kinds` fall due now, after what has arrived so far."""
    with desk.app.engine.begin() as conn:
        for row in armed(conn, tid):
            if row["kind"] in kinds:
                conn.execute(timers.update().where(timers.c.id == row["id"]).values(due_at=utcnow()))


def test_a_reply_in_line_before_the_closing_time_keeps_the_ticket_open(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"))
    desk = next(desk_gen)
    try:
        tid, agent = _waiting(desk)
        _arrives(desk, tid, "It is a LaserJet 4.\n")
        _due_now(desk, tid, "warn", "close")
        assert fire_due_timers(desk.app) == 0
        assert desk.ticket(tid)["status"] == "waiting_customer"
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []

        assert drain(desk.app) == 1
        desk.flush()
        assert desk.ticket(tid)["status"] == "open"
        assert fire_due_timers(desk.app) == 0
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []
        assert "LaserJet" in desk.messages(tid)[-1]["text"]
    finally:
        desk_gen.close()


def test_mail_that_came_after_the_due_time_holds_nothing(make_app, db_url):
    """Else a desk never without mail in flight would never close a ticket."""
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"))
    desk = next(desk_gen)
    try:
        tid, _ = _waiting(desk)
        with desk.app.engine.begin() as conn:
            for row in armed(conn, tid):
                if row["kind"] == "close":
                    conn.execute(timers.update().where(timers.c.id == row["id"])
                                 .values(due_at=utcnow() - timedelta(seconds=1)))
        # Someone else's new mail, received after the close fell due, waits in line.
        msg = build_mail("other@example.org", "Another question.\n", subject="Scanner")
        with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
            client.send_message(msg, to_addrs=["support@example.com"])
        assert fire_due_timers(desk.app) == 1
        assert desk.ticket(tid)["status"] == "closed"
        assert drain(desk.app) == 1
    finally:
        desk_gen.close()
