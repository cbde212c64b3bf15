"""A robot's "no reply" address in the spellings services use: noreply-dmarc-support@ (DMARC aggregate
reports), no-reply-aws@ (AWS notices), no_reply@, do_not_reply@. Only the bare noreply@, no-reply@,
donotreply@, do-not-reply@ were known; the others' mail, often with no RFC 3834 field, was acknowledged to an
address nobody reads. PRODUCT.md "Loops and robots": stored on its ticket, never answered.
"""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, ticket_events, wait_until
from ticketd.app import build_app
from ticketd.domain.loops import auto_generated_reason
from ticketd.settings import load_settings
from ticketd.store.tables import messages

ROBOTS = ["noreply-dmarc-support@google.example", "no-reply-aws@amazon.example", "no_reply@shop.example",
          "do_not_reply@bank.example", "No.Reply+4711@shop.example"]
PEOPLE = ["nora.reply@example.org", "noreen@example.org", "reply@example.org"]


def test_noreply_addresses_in_any_spelling_are_stored_and_never_answered(tmp_path, sink, processes):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", smtp_port=port, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    processes.append(DaemonProcess(config).start())

    with smtplib.SMTP("127.0.0.1", port) as client:
        for n, sender in enumerate(ROBOTS + PEOPLE):
            client.send_message(customer_mail(subject=f"Report {n}", sender=sender))

    def acknowledged(address: str) -> bool:
        return any(address.lower() in m.rcpt_tos for m in sink.messages)

    wait_until(lambda: all(acknowledged(sender) for sender in PEOPLE), timeout=30)
    sink.settle(1.0)
    assert [sender for sender in ROBOTS if acknowledged(sender)] == []
    with app.engine.connect() as conn:
        stored = {row.from_addr.lower(): row for row in conn.execute(select(messages))}
    for sender in ROBOTS:
        row = stored[sender.lower()]
        assert row.auto_generated is True and row.ticket_id is not None, sender
        [event] = ticket_events(app, row.ticket_id, "not_answered")
        assert "robot sender" in event["reason"]
    app.engine.dispose()


@pytest.mark.parametrize("sender", ["noreplying@example.org", "donotreplace@example.org", "nobody@example.org",
                                    "postmaster-team@example.org"])
def test_words_that_only_begin_so_are_a_persons(sender):
    assert auto_generated_reason({}, sender, sender) is None
