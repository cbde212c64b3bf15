"""Which mail a ticket has is answered through an index, not by reading the whole raw_mail table."""

from __future__ import annotations

from sqlalchemy import select

from ticketd.store.tables import timers
from ticketd.store.timers import HELD_BY_QUARANTINE


def test_the_sweep_asks_for_a_due_timers_quarantined_reply_through_the_raw_mail_ticket_index(make_app, sqlite_url):
    """Each due warn or close asks whether a quarantined reply holds it (ticketd/quarantined_reply.py):
    without the index, every due timer read every quarantined mail (250 ms a sweep with 20 000 of them)."""
    app = make_app(sqlite_url)
    statement = select(timers.c.id).where(HELD_BY_QUARANTINE)
    with app.engine.connect() as conn:
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "raw_mail_ticket" in plan, plan   # SQLite's plan names the index it searches
