"""The hourly cap's exemption for a wait's warning and closing mail follows the notice's `lifecycle` flag.

ticketd/timers.py marks the two mails it sends the customer as a wait runs
out; a notice that only shares their template (a customer's "accept" closes
with ticket_closed too) is capped as any automatic mail.
"""

from __future__ import annotations

import pytest

from outbound.outbox import queue_notices
from tests.desk import build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice

CUSTOMER = "cust@example.org"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, extra="auto_mails_per_recipient_per_hour: 1\n")


def _queue(desk, tid: int, **flags) -> list[int]:
    with desk.app.engine.begin() as conn:
        return queue_notices(conn, desk.app, [Notice(
            template="requester/waiting_reminder", recipient=CUSTOMER, ticket_id=tid,
            context={"close_at": None, "status": "waiting_customer"}, **flags)], utcnow())


def test_only_a_lifecycle_notice_passes_the_cap(desk):
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))   # the acknowledgement uses up the cap of 1
    tid = desk.ticket()["id"]
    assert _queue(desk, tid) == []
    [suppressed] = desk.events(tid, "mail_suppressed")
    assert "rate limit" in suppressed["reason"]
    assert len(_queue(desk, tid, lifecycle=True)) == 1
    assert len(desk.events(tid, "mail_suppressed")) == 1
