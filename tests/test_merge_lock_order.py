"""Merging on PostgreSQL takes the ticket locks in the order processing does: a ticket before the one it is merged
into. No deadlock, so neither a mail's processing nor the merge is rolled back and made again.

A mail to a ticket merged into another locks its way along the merge,
source before target (ticketd.store.merge.lock_final_ticket), and an
agent's `#merge` holds its ticket (the source) from the start of its mail's
processing. A merge that locked the two in id order met either halfway.
"""

from __future__ import annotations

import logging
import threading

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from tests.sink import wait_until
from tests.test_erase_lock_order import _waiting_for_a_lock
from ticketd.clock import utcnow
from ticketd.merge import MergeRefused, merge
from ticketd.store.merge import lock_final_ticket, merge_tickets
from ticketd.store.tickets import lock_ticket

ANN, BOB = "ann@example.org", "bob@example.org"


@pytest.fixture
def desk(make_app, postgres_url):
    yield from open_desk(make_app, postgres_url, rules=MINIMAL_RULES)


def _two_tickets(desk) -> tuple[int, int]:
    desk.send(build_mail(ANN, "Ann's printer is on fire.\n", subject="Printer on fire"))
    anns = desk.ticket()["id"]
    desk.send(build_mail(BOB, "Bob's printer smokes.\n", subject="Printer outage"))
    bobs = desk.ticket()["id"]
    assert bobs > anns   # the newer merged into the older: merge order is not id order
    return anns, bobs


def _merge_while(desk, held: int, then, source: int, into: int) -> dict:
    """`ticketd tickets merge SOURCE INTO` started while a transaction holds `held`, which then does `then(conn)`."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["merged"] = merge(desk.app, source, into)
        except Exception as exc:   # reported below, not lost in the thread
            outcome["error"] = exc

    with desk.app.engine.connect() as processing:
        tx = processing.begin()
        lock_ticket(processing, held)
        merger = threading.Thread(target=run)
        merger.start()
        # Waiting behind the held ticket, or through already without needing it.
        wait_until(lambda: _waiting_for_a_lock(desk.app) == 1 or not merger.is_alive())
        then(processing)
        tx.commit()
    merger.join(timeout=30)
    assert not merger.is_alive()
    return outcome


def _retried(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ticketd.admin"]


def test_merging_a_merged_pair_again_waits_for_a_mail_on_the_merged_ticket(desk, caplog):
    anns, bobs = _two_tickets(desk)
    merge(desk.app, bobs, anns)
    caplog.set_level(logging.WARNING, logger="ticketd.admin")

    # A mail naming Bob's old ticket is processed (Bob's, then on to Ann's)
    # while the admin merges the pair again.
    outcome = _merge_while(desk, bobs, lambda conn: lock_final_ticket(conn, bobs), bobs, anns)

    assert isinstance(outcome.get("error"), MergeRefused), outcome
    assert "already merged" in str(outcome["error"])
    assert _retried(caplog) == []   # refused once, not after a deadlock rolled it back


def test_merging_back_into_the_merged_ticket_waits_for_a_mail_on_it(desk, caplog):
    anns, bobs = _two_tickets(desk)
    merge(desk.app, bobs, anns)
    caplog.set_level(logging.WARNING, logger="ticketd.admin")

    outcome = _merge_while(desk, bobs, lambda conn: lock_final_ticket(conn, bobs), anns, bobs)

    assert isinstance(outcome.get("error"), MergeRefused), outcome
    assert "leads back" in str(outcome["error"])
    assert _retried(caplog) == []


def test_an_agents_merge_and_the_admins_of_the_same_pair_do_not_deadlock(desk, caplog):
    anns, bobs = _two_tickets(desk)
    caplog.set_level(logging.WARNING, logger="ticketd.admin")

    # An agent's `#merge` on Bob's ticket holds it from the start of their
    # mail's processing; the admin merges the same pair meanwhile.
    outcome = _merge_while(desk, bobs, lambda conn: merge_tickets(conn, bobs, anns, utcnow(), actor="agent"),
                           bobs, anns)

    assert isinstance(outcome.get("error"), MergeRefused), outcome
    assert "already merged" in str(outcome["error"])
    assert _retried(caplog) == []
    assert desk.ticket(bobs)["merged_into"] == anns
    assert [m["text"] for m in desk.messages(anns)] == ["Ann's printer is on fire.", "Bob's printer smokes."]
