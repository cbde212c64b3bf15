"""Round-robin's open counts against a long history: time per assignment's count, and SQLite's plan.

    .venv/bin/python bench/assignment.py [--tickets 200000] [--agents 10] [--db URL]

Fills `tickets` with closed tickets spread over the agents (one in fifty
still open), then times `ticketd.store.assignment.open_counts` for a group
of three agents, which every assignment runs while it holds the write lock.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ticketd.store.assignment import open_counts  # noqa: E402
from ticketd.store.db import ensure_schema, make_engine  # noqa: E402
from ticketd.store.tables import tickets  # noqa: E402


def query_plan(engine, conn, group: list[str]) -> str:
    """SQLite's plan for the statement open_counts executes (caught on its way to the driver)."""
    seen: list[tuple[str, tuple]] = []

    def catch(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    sqlalchemy.event.listen(engine, "before_cursor_execute", catch)
    try:
        open_counts(conn, group)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", catch)
    statement, parameters = seen[-1]
    return "; ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--db", help="database URL of an empty database (default: SQLite in a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.db or f"sqlite:///{tmp}/bench.db")
        ensure_schema(engine)
        now = datetime.now(UTC).replace(tzinfo=None)
        agents = [f"agent{i}@example.com" for i in range(args.agents)]
        rows = [dict(subject="s", status="open" if i % 50 == 0 else "closed", priority="normal",
                     requester="customer@example.org", assignee=agents[(i // 7) % len(agents)],
                     created_at=now, updated_at=now, suppress_ack=False) for i in range(args.tickets)]
        with engine.begin() as conn:
            for i in range(0, len(rows), 10_000):
                conn.execute(sqlalchemy.insert(tickets), rows[i:i + 10_000])
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE tickets")  # as autovacuum would have by then
        group = agents[:3]
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                print("plan:", query_plan(engine, conn, group))
            started = time.perf_counter()
            for _ in range(args.rounds):
                counts = open_counts(conn, group)
            took = (time.perf_counter() - started) / args.rounds
        print(f"{engine.dialect.name}: {args.tickets} tickets, open counts of 3 of {args.agents} agents "
              f"{counts}: {1000 * took:.2f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
