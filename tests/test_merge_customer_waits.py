"""A merge that brings the customer's newer words onto a ticket makes them wait for an answer there.

The customer, asked a question on ticket A (waiting_customer), answers in a
new mail that opens ticket B; an agent merges B into A. Before, A stayed
waiting_customer with its warn and close timers counting on: the customer
was reminded to answer and A was closed "with no answer while we waited for
you", their answer on it unread. PRODUCT.md "The lifecycle": a customer's
reply to a waiting ticket moves it back to open, with the reason.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.merge import merge
from ticketd.store import tables as t
from ticketd.timers import fire_due_timers

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=MINIMAL_RULES)


def _open(desk, subject: str, body: str) -> int:
    desk.send(build_mail(CUSTOMER, body, subject=subject))
    return desk.ticket()["id"]


def _waiting(desk) -> int:
    """A ticket whose agent asked the customer a question: waiting_customer, its warn and close armed."""
    asked = _open(desk, "Printer on fire", "It is on fire.\n")
    assert desk.assign(asked) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\nWhich model is it?\n")
    assert desk.ticket(asked)["status"] == "waiting_customer"
    assert sorted(r["kind"] for r in _armed(desk, asked)) == ["close", "warn"]
    return asked


def _armed(desk, ticket_id: int) -> list[dict]:
    return [r for r in desk.rows(t.timers, ticket_id=ticket_id) if r["state"] == "armed"]


def _fire_everything_armed(desk, ticket_id: int) -> None:
    with desk.app.engine.begin() as conn:
        conn.execute(t.timers.update().where(t.timers.c.ticket_id == ticket_id, t.timers.c.state == "armed")
                     .values(due_at=utcnow() - timedelta(seconds=1)))
    fire_due_timers(desk.app)


def test_the_customers_answer_merged_in_opens_the_waiting_ticket_and_it_is_not_closed_unanswered(desk):
    asked = _waiting(desk)
    answer = _open(desk, "The printer model", "It is an LX-200.\n")

    merged = merge(desk.app, answer, asked)

    ticket = desk.ticket(asked)
    assert ticket["status"] == "open" and merged.reopened_from == "waiting_customer"
    [opened] = [e for e in desk.events(asked, "status") if e["to_value"] == "open"]
    assert opened["from_value"] == "waiting_customer"
    assert f"the customer's mail on [#{answer}], merged into this one" in opened["reason"]
    assert "goes from waiting_customer to open" in merged.summary()
    # open's respond_within runs for the answer; the waiting's reminder and close are gone.
    assert [r["kind"] for r in _armed(desk, asked)] == ["respond"]
    sent_before = len(desk.inbox(CUSTOMER))
    _fire_everything_armed(desk, asked)
    assert desk.events(asked, "auto_closed") == [] and desk.events(asked, "waiting_reminder") == []
    assert desk.ticket(asked)["status"] == "open"
    desk.flush()
    assert len(desk.inbox(CUSTOMER)) == sent_before   # no reminder, no closing mail


def test_words_older_than_the_agents_question_leave_the_ticket_waiting(desk):
    earlier = _open(desk, "Also the scanner", "The scanner is slow too.\n")
    asked = _waiting(desk)

    merged = merge(desk.app, earlier, asked)

    assert desk.ticket(asked)["status"] == "waiting_customer" and merged.reopened_from is None
    assert sorted(r["kind"] for r in _armed(desk, asked)) == ["close", "warn"]


def test_an_answered_open_ticket_gets_a_respond_clock_for_the_words_merged_in(desk):
    answered = _open(desk, "Printer on fire", "It is on fire.\n")
    assert desk.assign(answered) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "We are looking into it.\n")
    assert desk.ticket(answered)["status"] == "open" and _armed(desk, answered) == []
    later = _open(desk, "Printer still on fire", "Still burning.\n")

    merged = merge(desk.app, later, answered)

    assert desk.ticket(answered)["status"] == "open" and merged.reopened_from is None
    assert [r["kind"] for r in _armed(desk, answered)] == ["respond"]


def test_a_dry_run_changes_nothing(desk):
    asked = _waiting(desk)
    answer = _open(desk, "The printer model", "It is an LX-200.\n")

    preview = merge(desk.app, answer, asked, dry_run=True)

    assert preview.reopened_from == "waiting_customer"
    assert desk.ticket(asked)["status"] == "waiting_customer" and desk.ticket(answer)["merged_into"] is None
