"""`ticketd outbox retry --all-failed` leaves failed mail to an address that bounced: sent again, it bounces again.

The desk already stops queueing mail to an address a delivery report
proved bounced on a ticket; failed mail queued before the report came
is left failed by --all-failed too (said, with how many and why), and
sent only when the admin names it by its ID.
"""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from ingest.match import reply_address
from tests.cli import cli_ok
from tests.conftest import ONE_AGENT
from tests.desk import build_mail
from tests.sink import customer_mail, delivery_report, outbox_rows, receive, running, submit, wait_until
from tests.test_outbound import outbound_yaml
from ticketd.assignment import assign
from ticketd.store.tables import participants

GONE, KEPT, ALICE = "gone@example.org", "kept@example.org", "alice@example.com"


def _bounced(app) -> list[tuple[int, str]]:
    with app.engine.connect() as conn:
        return conn.execute(select(participants.c.ticket_id, participants.c.email)
                            .where(participants.c.bounced_at.is_not(None))).all()


def _failed_to(app, recipient: str) -> list[dict]:
    return [r for r in outbox_rows(app) if r["recipient"] == recipient and r["state"] == "failed"]


def test_all_failed_leaves_mail_to_a_bounced_address_and_its_id_still_sends_it(tmp_path, make_app, db_url, sink):
    app = make_app(db_url, rules=ONE_AGENT, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    config = tmp_path / "ticketd.yaml"
    receive(app, customer_mail(subject="Case gone", sender=GONE))
    [ack] = outbox_rows(app)
    assert assign(app, ack["ticket_id"]) == ALICE
    with running(app):
        wait_until(lambda: {r["state"] for r in outbox_rows(app)} == {"sent"})
        # The smarthost then refuses the customers' mail: Alice's answer to the first, the second's acknowledgement.
        sink.reject = {GONE, KEPT}
        to = reply_address(app.signer, "support@example.com", ack["ticket_id"], ALICE)
        submit(app, build_mail(ALICE, "Here is the fix.\n", to=to, subject="Re: [#1] Case gone"))
        submit(app, customer_mail(subject="Case kept", sender=KEPT))
        wait_until(lambda: _failed_to(app, GONE) and _failed_to(app, KEPT), timeout=20)
        # Only now the first customer's mailbox reports the acknowledgement it took earlier bounced for good.
        with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
            client.sendmail("", ["support@example.com"], delivery_report(ack["message_id"], GONE))
        wait_until(lambda: _bounced(app) == [(ack["ticket_id"], GONE)])
    [answer], [kept] = _failed_to(app, GONE), _failed_to(app, KEPT)
    sink.reject = False

    said = cli_ok(config, "outbox", "retry", "--all-failed")
    assert f"outbox {kept['id']}: requester/ticket_opened to {KEPT}" in said, said
    assert f"outbox {answer['id']}" not in said.split("left failed")[0], said
    assert (f"1 failed mail to an address that bounced left failed: outbox {answer['id']} to {GONE} (ticket "
            f"[#{ack['ticket_id']}])") in said, said
    assert _failed_to(app, GONE) == [answer]
    assert _failed_to(app, KEPT) == []

    # Named by its ID, it is sent: the admin knows better (a mailbox mended since).
    again = cli_ok(config, "outbox", "retry", str(answer["id"]))
    assert f"outbox {answer['id']}:" in again and "pending again" in again, again
    assert _failed_to(app, GONE) == []
