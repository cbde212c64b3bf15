"""What SQLAlchemy Core adds to one statement on ticketd's engine: an event row inserted, a ticket read.

Run from the repository root:  .venv/bin/python bench/statements.py [-n 20000] [--postgresql]

Each statement runs `n` times in one transaction, first as ticketd runs it
(`ticketd.store.tickets.add_event` and `get_ticket`: a statement built once,
executed with parameters, so SQLAlchemy's compiled cache is hit), then as
the same SQL handed to the driver's cursor. The difference is SQLAlchemy's
share of every statement ticketd executes (`bench/drain.py` prints how many
a mail takes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))   # after the root: bench/ingest.py must not shadow ingest/
from throwaway import database  # noqa: E402
from ticketd.clock import utcnow  # noqa: E402
from ticketd.store import tickets as store  # noqa: E402
from ticketd.store.db import ensure_schema, make_engine  # noqa: E402


def _cpu_us(run, n: int) -> float:
    """Microseconds of CPU per call of `run(i)`."""
    started = time.process_time()
    for i in range(n):
        run(i)
    return 1e6 * (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20000, help="executions of each statement")
    parser.add_argument("--postgresql", action="store_true",
                        help="a throwaway PostgreSQL database (server: TICKETD_BENCH_PG) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ticketd-stmt-") as work, database(args.postgresql, work) as url:
        engine = make_engine(url)
        ensure_schema(engine)
        now = utcnow()
        with engine.begin() as conn:
            ticket_id = store.create_ticket(conn, subject="bench", status="new", requester="a@example.org",
                                            created_at=now, updated_at=now)
            marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            cursor = conn.connection.driver_connection.cursor()
            stamp = now if engine.dialect.name == "postgresql" else now.isoformat(" ")
            insert_sql = (f"INSERT INTO events (ticket_id, at, actor, kind, reason) "
                          f"VALUES ({marker}, {marker}, {marker}, {marker}, {marker})")
            select_sql = f"SELECT * FROM tickets WHERE id = {marker}"
            figures = {
                "insert an event, SQLAlchemy": _cpu_us(lambda i: store.add_event(
                    conn, ticket_id, now, "bench", "note", reason=str(i)), args.n),
                "insert an event, driver": _cpu_us(lambda i: cursor.execute(
                    insert_sql, (ticket_id, stamp, "bench", "note", str(i))), args.n),
                "read a ticket, SQLAlchemy": _cpu_us(lambda i: store.get_ticket(conn, ticket_id), args.n),
                "read a ticket, driver": _cpu_us(lambda i: (cursor.execute(select_sql, (ticket_id,)),
                                                            cursor.fetchone()), args.n),
            }
        engine.dispose()
    print(f"{engine.dialect.name}, {args.n} of each, CPU per statement:")
    for name, us in figures.items():
        print(f"  {name:<30} {us:6.1f} us")


if __name__ == "__main__":
    main()
