"""The secrets every process of the desk shares, on any host: kept once in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, inspect, select

from ticketd.store.db import insert_if_absent, reading
from ticketd.store.tables import desk_secrets


def load_secret(engine: Engine, name: str) -> str | None:
    """The secret `name`, or None when no process has kept one yet.

    Also None in a database older than desk_secrets (schema step 13), which a read-only command may meet
    before the daemon upgraded it.
    """
    with reading(engine) as conn:
        if not inspect(conn).has_table(desk_secrets.name):
            return None
        return _value(conn, name)


def keep_secret(engine: Engine, name: str, value: str, now: datetime) -> tuple[str, bool]:
    """The secret `name`: `value` kept now when none was, else the one kept first; and whether `value` was."""
    with engine.begin() as conn:
        kept = insert_if_absent(conn, desk_secrets, dict(name=name, value=value, created_at=now), ["name"])
        return (value, True) if kept else (_value(conn, name), False)


def _value(conn: Connection, name: str) -> str | None:
    return conn.execute(select(desk_secrets.c.value).where(desk_secrets.c.name == name)).scalar_one_or_none()
