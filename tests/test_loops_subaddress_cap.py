"""The hourly cap on automatic mail counts a mailbox's subaddresses together (RFC 5233): an
auto-responder answering from cust+1@, cust+2@, … is one mailbox, and stops at the cap like one address.
Only the cap: each subaddress stays a person of its own on its ticket."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from tests.sink import customer_mail, outbox_rows, submit, ticket_events
from ticketd.domain.loops import cap_mailbox
from ticketd.pipeline import drain
from ticketd.store.tables import tickets

CAP = 3


@pytest.fixture
def intake(make_app, db_url):
    app = make_app(db_url, extra=f"auto_mails_per_recipient_per_hour: {CAP}\n")
    receiver = Receiver(app)
    receiver.start()
    yield app
    receiver.stop()


def _new_ticket(app, sender: str, n: int) -> int:
    submit(app, customer_mail(subject=f"Question {n}", sender=sender))
    assert drain(app) == 1
    with app.engine.connect() as conn:
        return conn.execute(select(tickets.c.id).order_by(tickets.c.id.desc())).scalars().first()


def test_subaddresses_of_one_mailbox_share_the_cap(intake):
    app = intake
    senders = ["cust@example.org"] + [f"cust+{n}@example.org" for n in range(1, 6)]
    ids = [_new_ticket(app, sender, n) for n, sender in enumerate(senders)]
    assert [r["recipient"] for r in outbox_rows(app)] == senders[:CAP]
    for ticket_id in ids[CAP:]:
        [event] = ticket_events(app, ticket_id, "mail_suppressed")
        assert "rate limit" in event["reason"]
    # Never merged as people: each ticket's requester is the subaddress that wrote.
    with app.engine.connect() as conn:
        requesters = conn.execute(select(tickets.c.requester).order_by(tickets.c.id)).scalars().all()
    assert requesters == senders


def test_other_mailboxes_keep_caps_of_their_own(intake):
    app = intake
    for n in range(CAP):
        _new_ticket(app, f"cust+{n}@example.org", n)
    # A longer local part, the same local part at another domain, another separator: other mailboxes.
    others = ["customer+1@example.org", "cust+1@example.net", "cust-1@example.org", "cust@example.org.uk"]
    for n, sender in enumerate(others):
        ticket_id = _new_ticket(app, sender, 10 + n)
        assert ticket_events(app, ticket_id, "mail_suppressed") == [], sender
    assert [r["recipient"] for r in outbox_rows(app)][CAP:] == others


@pytest.mark.parametrize(("address", "mailbox"), [
    ("cust@example.org", ("cust", "example.org")),
    ("Cust+Order-7@Example.ORG", ("cust", "example.org")),
    ("cust+a+b@example.org", ("cust", "example.org")),
    ("+tag@example.org", ("+tag", "example.org")),
    ("no-at-sign", ("no-at-sign", "")),
])
def test_the_mailbox_a_subaddress_belongs_to(address, mailbox):
    assert cap_mailbox(address) == mailbox
