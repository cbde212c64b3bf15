"""An outbox row whose recipient is not an email address is failed for good, never handed to the smarthost.

A smarthost given `RCPT TO:<john smith>` may take it and add its own
domain, delivering the customer's answer to a stranger's mailbox.
"""

from __future__ import annotations

import pytest

from outbound.delivery import deliver
from outbound.outbox import queue_notices
from tests.desk import body_text, open_desk
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice

ALICE = "alice@example.com"
JOHN = "john@client.example.org"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


@pytest.mark.parametrize("recipient", ["john smith", "unknown", "", "john@", "<john@client.example.org> x"])
def test_an_outbox_row_to_a_non_address_fails_for_good_without_being_sent(desk, recipient):
    tid = desk.open_assigned(JOHN, "The printer is on fire.\n", ALICE)
    before = len(desk.sink.messages)
    with desk.app.engine.begin() as conn:
        [outbox_id] = queue_notices(conn, desk.app, [Notice(
            template="requester/waiting_reminder", recipient=recipient, ticket_id=tid, by_person=True,
            context={"close_at": None, "status": "waiting_customer"})], utcnow())
    assert deliver(desk.app, outbox_id) == "failed"
    [row] = desk.rows(id=outbox_id)
    assert row["state"] == "failed" and "is not an email address" in row["last_error"]
    [failed] = desk.events(tid, "delivery_failed")
    assert "is not an email address" in failed["reason"]
    desk.flush()   # the assignee's word that it failed goes out, to the assignee only
    assert [m.rcpt_tos for m in desk.sink.messages[before:]] == [[ALICE]]
    assert "is not an email address" in body_text(desk.last(ALICE))
