"""Processing's hot statements on the driver's cursor (ticketd/store/driver.py) give what Connection.execute gives."""

from __future__ import annotations

from datetime import timedelta
from email.utils import make_msgid

import pytest
from sqlalchemy import event, exc, select

from ingest.parse import dedupe_key
from tests.sink import customer_mail
from ticketd.clock import utcnow
from ticketd.pipeline import process_batch
from ticketd.store import inbox, merge, outbox, tickets, timers
from ticketd.store.db import reading
from ticketd.store.driver import Hot
from ticketd.store.inbox import store_raw
from ticketd.store.tables import messages
from ticketd.store.tables import tickets as tickets_table


def _store(app, msg) -> int:
    raw = msg.as_bytes()
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                     envelope_to=["support@example.com"]).raw_id


@pytest.fixture
def worked(make_app, db_url):
    """An app whose database holds a ticket with a reply, an acknowledgement, timers and a waiting raw mail."""
    app = make_app(db_url)
    first = make_msgid(domain="client.example.org")
    [opened] = process_batch(app, [_store(app, customer_mail(message_id=first, Cc="cc@example.org"))])
    reply = customer_mail(subject=f"Re: [#{opened.ticket_id}] Printer on fire", body="Still burning.\n",
                          In_Reply_To=first, References=first)
    process_batch(app, [_store(app, reply)])
    waiting = _store(app, customer_mail(subject="waits"))
    return app, opened.ticket_id, first, waiting


def _reads(ticket_id: int, first: str, waiting: int, since, kind: str):
    """(hot statement, parameters) for every read processing makes through the driver."""
    return [
        (tickets._TICKET, dict(ticket_id=ticket_id)),
        (tickets._TICKET, dict(ticket_id=ticket_id + 100)),
        (tickets._TICKETS_BY_MESSAGE_IDS, dict(message_ids=[first, "none@x", first])),
        (tickets._PARTICIPANT_ROLE, dict(ticket_id=ticket_id, email="cust@example.org")),
        (tickets._PARTICIPANT_STANDING, dict(ticket_id=ticket_id, email="cc@example.org")),
        (tickets._KEPT_COPIES, dict(message_id=first.strip("<>"), from_addr="cust@example.org")),
        (outbox._NOTICE_HISTORY, dict(ticket_id=ticket_id, recipient="cust@example.org",
                                      addresses=["cust@example.org"], addresses_again=["cust@example.org", "c@x"],
                                      template="requester/ticket_opened", since=since)),
        (outbox._SUBADDRESSES, dict(low="cust+", high="cust,", pattern="cust+%@example.org",
                                    other_pattern="cust+%@example.org", counted=["cust@example.org"], since=since)),
        (outbox._THREAD, dict(ticket_id=ticket_id)),
        (outbox._SENT_RAWS, dict(message_ids=["a@b", "c@d"], limit=3)),
        (timers._ARMED_OF_KIND_ANSWERED, dict(ticket_id=ticket_id, kind=kind)),
        (merge._MERGED_INTO, dict(ticket_id=ticket_id)),
        (inbox._WAITING_ROWS, dict(ids=[waiting, waiting + 50])),
        (inbox._WAITING_ROWS, dict(ids=[])),   # an empty IN: SQLAlchemy's own empty-set expression
    ]


def test_every_hot_read_gives_the_rows_and_types_core_gives(worked):
    app, ticket_id, first, waiting = worked
    with reading(app.engine) as conn:
        kinds = conn.execute(select(messages.c.message_id, messages.c.ticket_id)).all()
        assert len(kinds) == 2   # the opening mail and its reply, on one ticket
        kind = timers.armed(conn, ticket_id)[0]["kind"]
        for hot, params in _reads(ticket_id, first.strip("<>"), waiting, utcnow() - timedelta(hours=1), kind):
            core = conn.execute(hot.statement, params)
            expected = [tuple(row) for row in core.all()]
            got = hot.execute(conn, params)
            assert got.rows == expected, hot.statement
            assert [[type(v) for v in row] for row in got.rows] == [[type(v) for v in row] for row in expected]
            assert got.keys == tuple(core.keys())
    # The reads found something: a comparison of empty results would prove little.
    with reading(app.engine) as conn:
        assert tickets.get_ticket(conn, ticket_id)["created_at"] == conn.execute(
            select(tickets_table.c.created_at).where(tickets_table.c.id == ticket_id)).scalar_one()
        assert tickets.tickets_by_message_ids(conn, [first.strip("<>")]) == [ticket_id]
        assert outbox.ticket_thread(conn, ticket_id).references
        kind = timers.armed(conn, ticket_id)[0]["kind"]
        assert timers.armed_of_kind_answered(conn, ticket_id, kind)["answered"] is False
        assert [r["id"] for r in inbox.load_raw(app.engine, [waiting])] == [waiting]


def test_a_hot_write_stores_what_core_stores(worked):
    app, ticket_id, _, _ = worked
    now = utcnow()
    values = dict(subject="driver", status="new", priority="high", requester="r@example.org", suppress_ack=True,
                  created_at=now, updated_at=now)
    with app.engine.begin() as conn:
        hot = tickets.create_ticket_row(conn, **values)
        core = dict(conn.execute(tickets._INSERT_TICKET_ROW.statement, values).mappings().one())
        assert {k: v for k, v in hot.items() if k != "id"} == {k: v for k, v in core.items() if k != "id"}
        assert hot["suppress_ack"] is True and hot["created_at"] == now
        assert tickets.get_ticket(conn, hot["id"]) == hot
        tickets.update_ticket(conn, hot["id"], now, status="open")
        assert tickets.get_ticket(conn, hot["id"])["status"] == "open"
        assert tickets.add_participant(conn, hot["id"], "P@example.org", "follower", None, now) is True
        assert tickets.add_participant(conn, hot["id"], "p@example.org", "follower", None, now) is False


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(worked):
    app, ticket_id, _, _ = worked
    now = utcnow()
    row = dict(id=ticket_id, subject="again", status="new", created_at=now, updated_at=now)
    with pytest.raises(exc.IntegrityError) as core, app.engine.begin() as conn:
        conn.execute(tickets._INSERT_TICKET.statement, row)
    with pytest.raises(exc.IntegrityError) as hot, app.engine.begin() as conn:
        tickets.create_ticket(conn, **row)
    assert type(hot.value.orig) is type(core.value.orig)
    assert hot.value.statement.split()[:3] == ["INSERT", "INTO", "tickets"]


def test_listeners_see_each_hot_statement_with_parameters_the_driver_takes(worked):
    app, ticket_id, first, _ = worked
    seen: list[tuple[str, object]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    event.listen(app.engine, "before_cursor_execute", grab)
    try:
        with reading(app.engine) as conn:
            assert tickets.tickets_by_message_ids(conn, [first.strip("<>"), "other@x"]) == [ticket_id]
            assert conn.in_transaction()   # begun as Connection.execute begins: SQLite reads one snapshot
            [(statement, parameters)] = seen
            assert "IN (" in statement and "POSTCOMPILE" not in statement
            assert conn.exec_driver_sql(statement, parameters).all()[0][1] == ticket_id
    finally:
        event.remove(app.engine, "before_cursor_execute", grab)


def test_a_statement_needing_core_is_refused():
    from sqlalchemy import literal
    from sqlalchemy.dialects import sqlite

    class Dialected:
        dialect = sqlite.dialect()

    stmt = select(messages.c.id).where(messages.c.id == literal(1, literal_execute=True))
    with pytest.raises(ValueError):
        Hot(stmt)._form(Dialected(), ())
