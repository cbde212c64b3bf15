"""A bounce of our mail to a customer on an internationalised domain marks that customer bounced.

We hand the smarthost the domain in A-labels (RFC 5890; outbound.send.ascii_domain), so the mail
system that bounces names it so (RFC 3464 rfc822 address type), while the ticket may know the
customer by the U-labels they wrote from; an RFC 6533 report may name U-labels for an A-label customer.
"""

from __future__ import annotations

import pytest

from tests.desk import build_mail, open_desk
from tests.sink import delivery_report
from ticketd.store.tables import participants


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _global_report(original_message_id: str, recipient: str) -> bytes:
    """The RFC 6533 form: a message/global-delivery-status naming `recipient` as a "utf-8" address."""
    raw = delivery_report(original_message_id, recipient)
    raw = raw.replace(b"message/delivery-status", b"message/global-delivery-status")
    return raw.replace(b"rfc822; ", b"utf-8; ").replace(b"rfc822;", b"utf-8;")


@pytest.mark.parametrize("written,reported,report", [
    ("kunde@bücher.example", "kunde@xn--bcher-kva.example", delivery_report),
    ("kunde@bücher.example", "Kunde@XN--BCHER-KVA.example", delivery_report),
    ("kunde@xn--bcher-kva.example", "kunde@bücher.example", _global_report),
])
def test_a_bounce_naming_the_other_form_of_the_domain_marks_the_customer(desk, written, reported, report):
    desk.send(build_mail(written, "The printer is on fire.\n"))
    ticket_id = desk.ticket()["id"]
    [ack] = desk.inbox("kunde@xn--bcher-kva.example")
    ack_id = str(ack["Message-ID"]).strip("<>")
    desk.send_raw(report(ack_id, reported), mail_from="")
    [customer] = desk.rows(participants, ticket_id=ticket_id, email=written)
    assert customer["bounced_at"] is not None
    [event] = desk.events(ticket_id, "bounced")
    assert event["to_value"] == written
