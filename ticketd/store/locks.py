"""Locks other sessions hold on the database: how long a reader waits for them, and who holds them."""

from __future__ import annotations

import fcntl
import struct
from pathlib import Path

from sqlalchemy import exc, text

# How long a command that only reads (status, `tickets list`, ...) waits for a lock another session holds:
# an admin's `LOCK TABLE`, a migration stuck in an open transaction, a sqlite3 shell holding the file exclusively.
# Without it status waited for ever on PostgreSQL, and 30 s on SQLite, past a monitoring check's own timeout
# (10 s for check_nrpe), which then reports a timeout that names nothing. The daemon's writers keep waiting
# longer (write_queue.BUSY_TIMEOUT_SECONDS): their work is the mail, and it waits its turn.
READ_PATIENCE_SECONDS = 3

# Status's limit on any one statement (PostgreSQL's statement_timeout): above READ_PATIENCE_SECONDS, so that a
# wait for a lock is told as one, and below a check's timeout, so that status answers whatever it waits for.
STATUS_STATEMENT_SECONDS = 6

# PostgreSQL's lock_not_available (appendix A), which lock_timeout raises.
_LOCK_NOT_AVAILABLE = "55P03"
# SQLite's SQLITE_BUSY and SQLITE_LOCKED (https://sqlite.org/rescode.html), primary codes.
_SQLITE_BUSY_CODES = frozenset({5, 6})


def limit_waits(dbapi_connection, lock_seconds: float | None, statement_seconds: float | None) -> None:
    """PostgreSQL: SET LOCAL lock_timeout and statement_timeout, for the transaction just begun (psycopg's)."""
    for name, seconds in (("lock_timeout", lock_seconds), ("statement_timeout", statement_seconds)):
        if seconds is not None:
            dbapi_connection.execute(f"SET LOCAL {name} = {int(seconds * 1000)}")


def is_lock_wait(error: BaseException) -> bool:
    """Whether a database error is a wait for another session's lock given up (lock_timeout, SQLite busy)."""
    if not isinstance(error, exc.DBAPIError):
        return False
    said = error.orig
    if getattr(said, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
        return True
    code = getattr(said, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_BUSY_CODES
    # write_queue.retry_while_locked raises sqlite3's error without a code, in SQLite's words.
    return "database is locked" in str(said)


def locked_message(url: str, error: BaseException) -> str:
    """`the database is locked: ...`, on one line, naming who holds the lock where the database tells."""
    from ticketd.store.db import sqlite_file

    path = sqlite_file(url)
    if path is not None:
        holder = sqlite_lock_holder(path)
        who = f"process {holder}" if holder else "another process (a sqlite3 shell, a backup, a copy tool)"
        return f"the database is locked: {who} holds {path} exclusively; gave up waiting"
    try:
        holders = postgres_lock_holders(url)
    except Exception as failed:   # the lock said enough; who holds it is a courtesy
        holders = [f"a session it cannot name ({_first_line(failed)})"]
    who = "; ".join(holders) if holders else "a session that has let go since"
    return f"the database is locked: {who}; gave up waiting (PostgreSQL: {_first_line(error)})"


def _first_line(error: BaseException) -> str:
    """What the driver said, without PostgreSQL's LINE and caret lines under it."""
    said = str(getattr(error, "orig", None) or error).strip().splitlines()
    return " ".join(said[0].split())[:200] if said else type(error).__name__


# Every session's exclusive hold on a relation of this database: the only lock mode that stops a reader
# (ACCESS EXCLUSIVE conflicts with the ACCESS SHARE a SELECT takes). pg_locks is readable by every role;
# pg_stat_activity shows another role's state and query only to its members and pg_read_all_stats.
_HOLDERS = text("""
    SELECT l.pid, string_agg(DISTINCT coalesce(c.relname, l.relation::text), ', ') AS relations,
           max(a.application_name) AS application_name, max(a.usename) AS usename, max(a.state) AS state,
           max(a.query) AS query, max(extract(epoch FROM now() - a.xact_start)) AS held_seconds
    FROM pg_locks l
    LEFT JOIN pg_class c ON c.oid = l.relation
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid IS DISTINCT FROM pg_backend_pid()
    GROUP BY l.pid
    ORDER BY max(a.xact_start) NULLS LAST, l.pid
""")


def postgres_lock_holders(url: str) -> list[str]:
    """Each session holding a table of the database exclusively, in words: pid, who, what it does."""
    from ticketd.store.db import make_engine

    engine = make_engine(url, patience=READ_PATIENCE_SECONDS, statement_timeout=STATUS_STATEMENT_SECONDS)
    try:
        with engine.connect() as conn:
            return [_holder(row) for row in conn.execute(_HOLDERS).mappings()]
    finally:
        engine.dispose()


def _holder(row) -> str:
    if row["pid"] is None:   # a transaction prepared for two-phase commit holds it, with no session
        return f"a prepared transaction (pg_prepared_xacts) holds {row['relations']} exclusively"
    who = ", ".join(f"{label} {row[key]}" for key, label in (("application_name", "application"),
                                                             ("usename", "user")) if row[key])
    said = f"pid {row['pid']}" + (f" ({who})" if who else "") + f" holds {row['relations']} exclusively"
    if row["held_seconds"] is not None:
        said += f", in a transaction open for {int(row['held_seconds'])} s"
    if row["state"]:
        said += f" ({row['state']})"
    query = " ".join((row["query"] or "").split())
    if query and query != "<insufficient privilege>":
        said += f", its {'last ' if row['state'] != 'active' else ''}query: {query[:200]}"
    return said


# Where SQLite's unix VFS takes its locks in the database file (os_unix.c): an exclusive lock is a write lock
# on the SHARED range, which a read lock probed there with F_GETLK finds, with the holder's pid.
_PENDING_BYTE = 0x40000000
_SHARED_FIRST = _PENDING_BYTE + 2
_SHARED_SIZE = 510
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (32 bytes).
_FLOCK = "hhqqi4x"


def sqlite_lock_holder(path: Path) -> str | None:
    """`1234 (sqlite3 desk.db)`: the process holding the database file exclusively, when Linux tells.

    For a command giving up: closing the probe's file drops every POSIX lock
    this process holds on the database, SQLite's own among them.
    """
    try:
        with open(path, "rb") as file:
            probe = struct.pack(_FLOCK, fcntl.F_RDLCK, 0, _SHARED_FIRST, _SHARED_SIZE, 0)
            kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, fcntl.fcntl(file, fcntl.F_GETLK, probe))
    except OSError:   # gone since, or another system's struct flock
        return None
    if kind == fcntl.F_UNLCK or pid <= 0:
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:   # no /proc, or another user's process
        return str(pid)
    return f"{pid} ({command[:120]})" if command else str(pid)
