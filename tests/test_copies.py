"""A mail kept already, come again with other bytes: one message, and `quarantine retry` says so."""

from __future__ import annotations

from sqlalchemy import func, select

from ingest.parse import dedupe_key
from tests.cli import cli_ok
from tests.test_status_checks import DEEP
from ticketd.pipeline import drain
from ticketd.store.inbox import store_raw
from ticketd.store.tables import messages, raw_mail

HEAD = (b"From: Dana <dana@example.org>\r\nTo: support@example.com\r\nSubject: deep\r\n"
        b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\nMessage-ID: <deep-copy@example.org>\r\n")


def _store(app, raw: bytes) -> int:
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id).raw_id


def test_a_quarantined_copy_retried_after_the_first_was_kept_is_not_added_twice(tmp_path, make_app, sqlite_url):
    """The copy came nested deeper than max_mime_depth (quarantined); the first, flat, became the ticket.
    Retried with the limit raised, the copy says what the first said."""
    config = tmp_path / "ticketd.yaml"
    app = make_app(sqlite_url, extra="max_mime_depth: 2\n")
    nested = _store(app, HEAD + DEEP)
    drain(app)
    flat = _store(app, HEAD + b"Content-Type: text/plain\r\n\r\ndeep\r\n")
    drain(app)
    with app.engine.connect() as conn:
        assert dict(conn.execute(select(raw_mail.c.id, raw_mail.c.state)).all()) == {
            nested: "quarantined", flat: "done"}
    config.write_text(config.read_text().replace("max_mime_depth: 2\n", "max_mime_depth: 10\n"))
    said = cli_ok(config, "quarantine", "retry", str(nested))
    assert said == (f"mail {nested} processed: ticket 1 has it already (another delivery of it, its bytes "
                    f"changed on the way); not added twice\n")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 1
        assert conn.execute(select(raw_mail.c.state, raw_mail.c.ticket_id).where(raw_mail.c.id == nested)
                            ).one() == ("done", 1)
