"""The hourly cap on automatic mail counts one mailbox once, whichever IDNA form its domain is written in:
`cust@bücher.example` and `cust@xn--bcher-kva.example` are one mailbox (RFC 5890 section 2.3.2.1), and an
auto-responder answering in both spellings got up to twice the cap (PRODUCT.md "Loops and robots")."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from tests.sink import customer_mail, outbox_rows, submit, ticket_events
from ticketd.pipeline import drain
from ticketd.store.tables import tickets

CAP = 3
U_LABEL, A_LABEL = "bücher.example", "xn--bcher-kva.example"


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


@pytest.mark.parametrize("first,second", [(U_LABEL, A_LABEL), (A_LABEL, U_LABEL)])
def test_both_forms_of_a_domain_share_one_cap(intake, first, second):
    app = intake
    senders = [f"cust@{first if n % 2 == 0 else second}" for n in range(2 * CAP)]
    ids = [_new_ticket(app, sender, n) for n, sender in enumerate(senders)]
    assert [r["recipient"] for r in outbox_rows(app)] == senders[:CAP]
    for ticket_id in ids[CAP:]:
        [event] = ticket_events(app, ticket_id, "mail_suppressed")
        assert "rate limit" in event["reason"]


def test_subaddresses_in_both_forms_share_the_mailbox_cap(intake):
    app = intake
    senders = [f"cust+{n}@{U_LABEL if n % 2 else A_LABEL}" for n in range(2 * CAP)]
    ids = [_new_ticket(app, sender, n) for n, sender in enumerate(senders)]
    assert [r["recipient"] for r in outbox_rows(app)] == senders[:CAP]
    for ticket_id in ids[CAP:]:
        [event] = ticket_events(app, ticket_id, "mail_suppressed")
        assert "rate limit" in event["reason"]


def test_another_domain_keeps_a_cap_of_its_own(intake):
    app = intake
    for n in range(CAP):
        _new_ticket(app, f"cust@{U_LABEL}", n)
    ticket_id = _new_ticket(app, "cust@buecher.example", CAP)
    assert ticket_events(app, ticket_id, "mail_suppressed") == []
