"""Erasing a merge target on PostgreSQL takes the ticket locks in the order processing does: no deadlock.

A mail to a ticket merged into another locks its way along the merge,
source before target (ticketd.store.merge.lock_final_ticket). An erasure
that locked the target first and the source after met such a mail
halfway: PostgreSQL broke the deadlock by failing one of the two.
"""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import text

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from tests.sink import wait_until
from ticketd.erase import erase_ticket, forget
from ticketd.merge import merge
from ticketd.store import tables as t
from ticketd.store.merge import lock_final_ticket
from ticketd.store.tickets import lock_ticket

ANN, BOB = "ann@example.org", "bob@example.org"


@pytest.fixture
def desk(make_app, postgres_url):
    yield from open_desk(make_app, postgres_url, rules=MINIMAL_RULES)


def _waiting_for_a_lock(app) -> int:
    with app.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'")).scalar_one()


def _merged(desk) -> tuple[int, int]:
    desk.send(build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    anns = desk.ticket()["id"]
    desk.send(build_mail(BOB, "Bob's printer smokes.\n", subject="Printer outage"))
    bobs = desk.ticket()["id"]
    assert bobs > anns   # the newer ticket merged into the older: chain order is not id order
    merge(desk.app, bobs, anns)
    return anns, bobs


def _erase_while_a_mail_to_the_source_is_processed(desk, bobs: int, erase) -> dict:
    """`erase()` started while a transaction holds the source's lock, which then follows the merge."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["erased"] = erase()
        except Exception as exc:   # reported below, not lost in the thread
            outcome["error"] = exc

    with desk.app.engine.connect() as processing:
        tx = processing.begin()
        lock_ticket(processing, bobs)   # where processing a mail naming Bob's old ticket starts
        eraser = threading.Thread(target=run)
        eraser.start()
        wait_until(lambda: _waiting_for_a_lock(desk.app) == 1)
        lock_final_ticket(processing, bobs)   # and on along the merge, to the ticket it leads to
        tx.commit()
    eraser.join(timeout=30)
    assert not eraser.is_alive()
    return outcome


def test_forget_waits_for_a_mail_on_the_merged_ticket_instead_of_deadlocking(desk, caplog):
    anns, bobs = _merged(desk)
    caplog.set_level(logging.WARNING, logger="ticketd.admin")

    outcome = _erase_while_a_mail_to_the_source_is_processed(desk, bobs, lambda: forget(
        desk.app.engine, desk.app.settings.attachments_dir, ANN, "`ticketd forget`", app=desk.app))

    assert "error" not in outcome and outcome["erased"].tickets == [anns]
    # Made once, not rolled back by a deadlock and made again.
    assert [r.getMessage() for r in caplog.records if r.name == "ticketd.admin"] == []
    assert [m["text"] for m in desk.messages(bobs)] == ["Bob's printer smokes."]


def test_tickets_delete_of_a_merge_target_waits_for_a_mail_on_the_merged_ticket(desk, caplog):
    anns, bobs = _merged(desk)
    caplog.set_level(logging.WARNING, logger="ticketd.admin")

    outcome = _erase_while_a_mail_to_the_source_is_processed(desk, bobs, lambda: erase_ticket(
        desk.app.engine, desk.app.settings.attachments_dir, anns, "`ticketd tickets delete`"))

    assert "error" not in outcome and outcome["erased"].tickets == [anns]
    assert [r.getMessage() for r in caplog.records if r.name == "ticketd.admin"] == []
    assert desk.rows(t.tickets, id=anns) == [] and desk.ticket(bobs)["merged_into"] is None
