"""How many statements processing one mail takes: each is a round trip on PostgreSQL (bench/README.md)."""

from __future__ import annotations

from email.utils import make_msgid

from sqlalchemy import event

from ingest.parse import dedupe_key
from tests.sink import customer_mail
from ticketd.pipeline import process_batch
from ticketd.store.inbox import store_raw

# The counts take in the whole of `process_batch` for one mail: loading it, the read before the write
# transaction, the claim and the finish. They were 14 for a new mail (its "created" and "routed" events
# inserted apart, the ticket read again for the acknowledgement after its INSERT) and 17 for a reply (its
# ticket followed for merges twice, the respond clock, whether an agent answered it and the sender's
# bounce mark each read apart).
NEW_MAIL = 12
REPLY = 14


def _store(app, msg) -> int:
    raw = msg.as_bytes()
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                     envelope_to=["support@example.com"]).raw_id


def _statements(app, raw_id: int) -> tuple[int, list]:
    """Process one stored mail; how many statements it took, and its outcomes."""
    executed: list[str] = []

    def count(conn, cursor, statement, *_):
        executed.append(statement)

    event.listen(app.engine, "before_cursor_execute", count)
    try:
        outcomes = process_batch(app, [raw_id])
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    return len(executed), outcomes


def test_a_new_mail_and_a_reply_take_fewer_statements(make_app, db_url):
    app = make_app(db_url)
    first_id = make_msgid(domain="client.example.org")
    taken, [opened] = _statements(app, _store(app, customer_mail(message_id=first_id)))
    assert opened.matched_by == "new"
    assert taken <= NEW_MAIL

    reply = customer_mail(subject=f"Re: [#{opened.ticket_id}] Printer on fire", body="Still burning.\n",
                          In_Reply_To=first_id, References=first_id)
    taken, [followed] = _statements(app, _store(app, reply))
    assert (followed.ticket_id, followed.matched_by) == (opened.ticket_id, "references")
    assert taken <= REPLY

