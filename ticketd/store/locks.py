"""Locks other sessions hold on the database: how long a reader waits for them, and who holds them."""

from __future__ import annotations

# How long a command that only reads (status, `tickets list`, ...) waits for a lock another session holds:
# an admin's `LOCK TABLE`, a migration stuck in an open transaction, a sqlite3 shell holding the file exclusively.
# Without it status waited for ever on PostgreSQL, and 30 s on SQLite, past a monitoring check's own timeout
# (10 s for check_nrpe), which then reports a timeout that names nothing. The daemon's writers keep waiting
# longer (write_queue.BUSY_TIMEOUT_SECONDS): their work is the mail, and it waits its turn.
READ_PATIENCE_SECONDS = 3


def limit_waits(dbapi_connection, lock_seconds: float | None, statement_seconds: float | None) -> None:
    """PostgreSQL: SET LOCAL lock_timeout and statement_timeout, for the transaction just begun (psycopg's)."""
    for name, seconds in (("lock_timeout", lock_seconds), ("statement_timeout", statement_seconds)):
        if seconds is not None:
            dbapi_connection.execute(f"SET LOCAL {name} = {int(seconds * 1000)}")
