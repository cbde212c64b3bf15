"""`ticketd forget` while the daemon opens a new ticket for the same person: the new ticket is erased whole or kept
whole, never left with its requester's words blanked and its requester taken off it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
from sqlalchemy import select

from tests.cli import CLI_TIMEOUT, ROOT
from tests.test_erase import deliver, mail_bytes
from ticketd.store import tables as t
from ticketd.store.db import reading

PERSON = "x@example.org"


def _ticket_of(app, message_id: str) -> int | None:
    with reading(app.engine) as conn:
        return conn.execute(select(t.messages.c.ticket_id).where(t.messages.c.message_id == message_id)).scalar()


def _waiting_on_a_lock(url: str, deadline: float) -> None:
    """Until a session of this database waits for a lock, looked at from a session of its own (one in a
    transaction sees pg_stat_activity as it was when the transaction began)."""
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock'").fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("forget never waited for the ticket held by the test")


def _start_forget(config) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.Popen([sys.executable, "-m", "ticketd.cli", "forget", PERSON, "--yes", "--json",
                             "--config", str(config)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_ticket_opened_while_forget_runs_is_not_half_erased(tmp_path, make_app, postgres_url):
    app = make_app(postgres_url)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes(PERSON, "My printer", "<x1@client.example.org>"))
    first = _ticket_of(app, "x1@client.example.org")

    # The person's ticket held by another session: forget has read which tickets are theirs and waits to
    # erase them, as it would behind the daemon answering on that ticket.
    url = postgres_url.replace("postgresql+psycopg", "postgresql")
    holder = psycopg.connect(url)
    try:
        holder.execute("SELECT id FROM tickets WHERE id = %s FOR UPDATE", (first,))
        forget = _start_forget(config)
        _waiting_on_a_lock(url, time.monotonic() + CLI_TIMEOUT)
        # Meanwhile their next mail opens a ticket of its own, committed before forget goes on.
        deliver(app, mail_bytes(PERSON, "My scanner too", "<x2@client.example.org>", "The scanner is broken."))
        holder.rollback()
        out, err = forget.communicate(timeout=CLI_TIMEOUT)
    finally:
        holder.close()
    assert forget.returncode == 0, err

    second = _ticket_of(app, "x2@client.example.org")
    with reading(app.engine) as conn:
        ticket = conn.execute(select(t.tickets).where(t.tickets.c.id == second)).mappings().first() \
            if second is not None else None
        people = set(conn.execute(select(t.participants.c.email)
                                  .where(t.participants.c.ticket_id == second)).scalars())
        texts = list(conn.execute(select(t.messages.c.text).where(t.messages.c.ticket_id == second)).scalars())
    assert _ticket_of(app, "x1@client.example.org") is None   # what was theirs when forget began is gone
    if ticket is not None:
        # Kept: whole, as a mail that came after the erasure would have left it.
        assert ticket["requester"] == PERSON
        assert PERSON in people, "the requester was taken off a ticket that still names them"
        assert texts == ["The scanner is broken."]
