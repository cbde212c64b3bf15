"""Mail a person's command sends (an agent's #close, a bare #status) is not held back by the loop cap."""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    # One automatic mail an hour: the acknowledgement uses it up.
    yield from open_desk(make_app, sqlite_url, extra="auto_mails_per_recipient_per_hour: 1\n")


def test_an_agents_status_and_close_reach_a_customer_over_the_cap(desk):
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.send(build_mail(CUSTOMER, "Another printer is on fire.\n", subject="Second printer"))
    assert desk.events(desk.ticket()["id"], "mail_suppressed")   # the cap holds automatic mail back
    before = len(desk.inbox(CUSTOMER))
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\n")
    desk.reply_to(desk.last(ALICE), ALICE, "#close\n")
    sent = desk.inbox(CUSTOMER)[before:]
    assert len(sent) == 2
    assert "three numbers" in body_text(sent[1])           # the closing mail asks for the rating
    assert not desk.events(tid, "mail_suppressed")
