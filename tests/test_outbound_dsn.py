"""Delivery reports (RFC 3464): parsed from real bounces, linked to our outbox mail, address marked bounced."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from outbound.dsn import read_report
from outbound.outbox import queue_notices
from tests.conftest import CORPUS
from tests.sink import customer_mail, delivery_report, outbox_rows, submit, ticket_events
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice
from ticketd.pipeline import drain
from ticketd.store.tables import messages, participants


@pytest.mark.parametrize("path,recipient,status,message_id", [
    ("zammad/mail033-undelivered-mail-returned-to-sender.box", "not_existing@znuny.com", "5.1.1",
     "20150830145601.30.608881@edenhofer.zammad.com"),
    ("bestpractical-rt/multipart-report", "jesmund@mailbox.other.example.com", "5.1.1",
     "200308221615.h7mgfgac020135@mx12.other.example.com"),
    ("zammad/mail092.box", "receiver@example.org", "5.2.2", None),
])
def test_real_bounces_are_read(path, recipient, status, message_id):
    report = read_report((CORPUS / path).read_bytes())
    assert report is not None
    assert report.failed_recipients == [recipient]
    assert report.status == status
    assert report.original_message_ids == ([message_id] if message_id else [])


def test_an_ordinary_mail_is_no_report():
    assert read_report(customer_mail().as_bytes()) is None


def test_a_bounce_of_our_ack_lands_on_its_ticket_and_marks_the_address(make_app, db_url):
    app = make_app(db_url, rules="agents: []\nroutes: []\n")
    receiver = Receiver(app)
    receiver.start()
    try:
        submit(app, customer_mail(sender="gone@example.org", subject="Printer on fire"))
        drain(app)
        [ack] = outbox_rows(app)
        # A second, unrelated ticket: the bounce must not go there.
        submit(app, customer_mail(sender="other@example.org", subject="Printer on fire"))
        drain(app)
        with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
            client.sendmail("", ["support@example.com"], delivery_report(ack["message_id"], "gone@example.org"))
        assert drain(app) == 1
    finally:
        receiver.stop(grace=0)
    with app.engine.connect() as conn:
        stored = conn.execute(select(messages).where(messages.c.message_id == "bounce-1@mx.example.org")
                              ).mappings().one()
        bounced = conn.execute(select(participants.c.bounced_at).where(
            participants.c.email == "gone@example.org")).scalar_one()
    assert stored["ticket_id"] == ack["ticket_id"]
    assert stored["matched_by"] == "bounce"
    assert stored["auto_generated"] is True
    assert bounced is not None
    [event] = ticket_events(app, ack["ticket_id"], "bounced")
    assert event["to_value"] == "gone@example.org" and "5.1.1" in event["reason"]
    assert len(outbox_rows(app)) == 2      # the bounce itself is never answered
    # and nothing automatic goes to the bounced address any more
    with app.engine.begin() as conn:
        assert queue_notices(conn, app, [Notice("requester/status_changed", "gone@example.org", ack["ticket_id"],
                                                context={"status": "open"})], utcnow()) == []
