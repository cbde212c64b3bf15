"""A mail larger than the smarthost takes fails for good, and the agent is told its size and the limit.

The smarthost announces its limit in EHLO (SIZE, RFC 1870): a mail above it
is not sent at all, or it would be uploaded in full to be refused with 552.
One refused at its end (552, RFC 5321 section 4.2.2; 5.3.4, RFC 3463) says
the same: "too big" alone leaves the agent guessing how much to cut.
"""

from __future__ import annotations

from sqlalchemy import update

from outbound.delivery import deliver
from tests.sink import customer_mail, outbox_rows, receive, ticket_events
from tests.test_outbound import outbound_yaml
from tests.test_outbound_order import _queue, _reply
from tests.test_outbound_recipient_answers import STANDARD, ScriptedSmarthost
from ticketd.store.tables import tickets

ALICE_UNROUTED = "agents:\n  - {email: alice@example.com, name: Alice}\nroutes: []\n"
LIMIT = 20000


def _too_big_reply(make_app, sqlite_url, server: ScriptedSmarthost):
    """An app on `server`, a ticket assigned to Alice, and a reply of some 60 kB queued to the customer."""
    app = make_app(sqlite_url, outbound_port=server.port, rules=ALICE_UNROUTED,
                   extra=outbound_yaml(server.port, retry_base=30, timeout=2))
    app.enqueue = lambda name, args: None
    receive(app, customer_mail())
    [ack] = outbox_rows(app)
    assert deliver(app, ack["id"]) == "sent"
    with app.engine.begin() as conn:
        conn.execute(update(tickets).where(tickets.c.id == ack["ticket_id"]).values(assignee="alice@example.com"))
    words = " ".join(f"word{n}" for n in range(10000))
    [big] = _queue(app, _reply(ack["ticket_id"], words))
    [row] = [r for r in outbox_rows(app) if r["id"] == big]
    assert len(bytes(row["raw"])) > LIMIT
    return app, row


def _told_alice(app, row) -> str:
    """The failure as the ticket records it, after checking Alice's notice was queued with the same words."""
    [event] = ticket_events(app, row["ticket_id"], "delivery_failed")
    [notice] = [r for r in outbox_rows(app) if r["template"] == "agent/delivery_failed"]
    assert notice["recipient"] == "alice@example.com"
    return event["reason"]


def test_a_mail_above_the_announced_size_is_not_sent_and_fails_with_its_size_and_the_limit(make_app, sqlite_url):
    server = ScriptedSmarthost(ehlo=("250-mx.example.net", f"250-SIZE {LIMIT}", "250 8BITMIME"))
    try:
        app, row = _too_big_reply(make_app, sqlite_url, server)
        mails_before = sum(line.upper().startswith("MAIL") for _, line in server.commands)
        assert deliver(app, row["id"]) == "failed"
        assert sum(line.upper().startswith("MAIL") for _, line in server.commands) == mails_before
        [row] = [r for r in outbox_rows(app) if r["id"] == row["id"]]
        size = len(bytes(row["raw"]))
        assert (row["state"], row["attempts"]) == ("failed", 1)
        assert f"{size} bytes" in row["last_error"] and f"{LIMIT} bytes" in row["last_error"]
        reason = _told_alice(app, row)
        assert f"{size} bytes" in reason and f"{LIMIT} bytes" in reason
    finally:
        server.stop()


def test_a_552_at_the_end_of_the_mail_fails_it_and_says_its_size(make_app, sqlite_url):
    answers = dict(STANDARD, DOT="552 5.3.4 Message size exceeds fixed limit")
    server = ScriptedSmarthost(lambda n, mail, verb, line: answers.get(verb, "250 2.0.0 ok")
                               if mail > 1 else STANDARD.get(verb, "250 2.0.0 ok"))
    try:
        app, row = _too_big_reply(make_app, sqlite_url, server)
        assert deliver(app, row["id"]) == "failed"
        [row] = [r for r in outbox_rows(app) if r["id"] == row["id"]]
        size = len(bytes(row["raw"]))
        assert row["last_error"].startswith("552 5.3.4 Message size exceeds fixed limit")
        assert f"{size} bytes" in row["last_error"] and "announces no limit" in row["last_error"]
        assert f"{size} bytes" in _told_alice(app, row)
    finally:
        server.stop()
