"""The fixed cost of a transaction on ticketd's SQLite engine: empty write, durable and read transactions.

Run from the repository root:  .venv/bin/python bench/transactions.py [-n 3000]
Every transaction runs `SELECT 1` and writes nothing (so no fsync either):
what is measured is what ticketd adds around a statement (the write queue,
the pragma, BEGIN, COMMIT), paid by every transaction of every mail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ticketd.store.db import durably, make_engine, reading  # noqa: E402


def _timed(connect, n: int) -> float:
    """Microseconds per transaction; `connect(i)` gives the connection for the i-th."""
    started = time.perf_counter()
    for i in range(n):
        with connect(i) as conn, conn.begin():
            conn.exec_driver_sql("SELECT 1")
    return 1e6 * (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="transactions of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ticketd-tx-") as work:
        engine = make_engine(f"sqlite:///{work}/tx.db")
        kinds = {
            "write (synchronous=NORMAL)": lambda i: engine.connect(),
            "durable write (synchronous=FULL)": lambda i: durably(engine),
            "read": lambda i: reading(engine),
            "durable and plain writes alternating": lambda i: durably(engine) if i % 2 else engine.connect(),
        }
        for name, connect in kinds.items():
            print(f"{name}: {_timed(connect, args.n):.0f} us per transaction")
        engine.dispose()


if __name__ == "__main__":
    main()
