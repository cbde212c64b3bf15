"""A throwaway database for a benchmark: SQLite in a directory, or a PostgreSQL database dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy

PG_ADMIN_URL = os.environ.get("TICKETD_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database(postgresql: bool, work: str, name: str = "bench.db") -> Iterator[str]:
    """The URL of an empty database: SQLite `name` in `work`, or a new database on the server of
    PG_ADMIN_URL (TICKETD_BENCH_PG), dropped when the block ends."""
    if not postgresql:
        yield f"sqlite:///{work}/{name}"
        return
    database_name = "ticketd_bench_" + uuid.uuid4().hex[:10]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database_name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database_name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE datname = '{database_name}'")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database_name}"')
        admin.dispose()
