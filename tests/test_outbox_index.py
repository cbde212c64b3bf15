"""The outbox line index: the claim's head-of-line check and the wake-up read only a line's unsent rows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, insert, inspect, select, text

from tests import test_schema_migrations as migrations_test
from ticketd.store import outbox as outbox_store
from ticketd.store.db import ensure_schema, make_engine
from ticketd.store.tables import outbox, tickets

# A second, empty database of the same kind, built from schema.sql.
fresh_url = migrations_test.fresh_url

T0 = datetime(2026, 5, 1, 12, 0, 0)
TICKETS, WAITING, SENT = 2000, 10, 5   # per ticket: 10 rows waiting, 5 sent before them


def _row(n: int, ticket_id: int, state: str, at: datetime) -> dict:
    # Two lines per ticket: its customer's and its agent's.
    recipient = f"c{ticket_id}@example.org" if n % 2 else "alice@example.com"
    return {"ticket_id": ticket_id, "message_row_id": None, "template": "requester/agent_reply",
            "recipient": recipient, "message_id": f"m{n}@example.com", "automatic": False, "raw": b"mail",
            "state": state, "attempts": 0, "next_attempt_at": at, "created_at": at,
            "sent_at": at if state == "sent" else None}


@pytest.fixture
def busy_outbox(db_url):
    """20 000 rows waiting across 2 000 tickets, each ticket's rows queued together, behind 10 000 sent ones."""
    engine = make_engine(db_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [{"subject": "Printer", "status": "open", "requester": f"c{i}@example.org",
                                        "created_at": T0, "updated_at": T0} for i in range(TICKETS)])
        ids = conn.execute(select(tickets.c.id).order_by(tickets.c.id)).scalars().all()
        rows = [_row(n, t, "sent", T0) for n, t in enumerate(i for i in ids for _ in range(SENT))]
        rows += [_row(len(rows) + n, t, "pending", T0 + timedelta(seconds=n))
                 for n, t in enumerate(i for i in ids for _ in range(WAITING))]
        for start in range(0, len(rows), 5000):
            conn.execute(insert(outbox), rows[start:start + 5000])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()


def _plan(engine, work) -> str:
    """The plan of the last outbox statement `work(conn)` runs, as the database would execute it."""
    seen: list[tuple[str, object]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", grab)
        with conn.begin() as tx:
            work(conn)
            tx.rollback()
        event.remove(conn, "before_cursor_execute", grab)
        statement, parameters = [s for s in seen if "outbox" in s[0]][-1]
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        lines = conn.exec_driver_sql(prefix + statement, parameters).all()
    return "\n".join(str(line[-1]) for line in lines)


def test_the_head_of_line_check_and_the_wake_up_go_through_the_line_index(busy_outbox):
    engine = busy_outbox
    with engine.connect() as conn:
        first = conn.execute(select(outbox).where(outbox.c.state == "pending").order_by(outbox.c.id)
                             .limit(1)).mappings().one()
    now = T0 + timedelta(days=1)
    claim = _plan(engine, lambda conn: outbox_store.claim_due(conn, first["id"] + 1, now, "test"))
    wake = _plan(engine, lambda conn: outbox_store.next_in_line(conn, first["ticket_id"], first["recipient"],
                                                                first["id"]))
    if engine.dialect.name == "sqlite":
        # Every look-up of earlier rows (the claim checks its own row and the batch behind it).
        earlier = [line for line in claim.splitlines() if "earlier" in line]
        assert len(earlier) == 2 and all("outbox_line" in line for line in earlier), claim
    else:
        # PostgreSQL: the batch's correlated check (the outer one is a hash anti-join, see bench/README.md).
        assert "outbox_line on outbox earlier" in claim, claim
    assert "outbox_line" in wake, wake


def _line_index(engine) -> tuple[list[str], str]:
    """The columns of outbox_line and its condition, as the database reports them."""
    [index] = [i for i in inspect(engine).get_indexes("outbox") if i["name"] == "outbox_line"]
    where = index["dialect_options"].get(f"{engine.dialect.name}_where")
    return index["column_names"], " ".join(str(where).split())


def test_an_upgraded_database_gets_the_line_index_schema_sql_builds(db_url, fresh_url):
    """The migration step makes the same partial index (tests/test_schema_migrations.py compares no WHERE)."""
    upgraded = migrations_test._build_v1(db_url)
    assert ensure_schema(upgraded) is False
    fresh = make_engine(fresh_url)
    assert ensure_schema(fresh) is True
    columns, where = _line_index(fresh)
    assert columns == ["ticket_id", "recipient", "id"]
    assert sorted(re.findall(r"'(\w+)'", where)) == ["pending", "sending"], where   # the unsent rows only
    assert _line_index(upgraded) == (columns, where)
    upgraded.dispose()
    fresh.dispose()
