"""PostgreSQL: the outbox ids of one ticket's mail are in commit order, since every writer locks the ticket first."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy
from sqlalchemy import select, text, update

from outbound.delivery import deliver
from outbound.outbox import queue_notices
from tests.sink import customer_mail, receive, wait_until
from tests.test_outbound import outbound_yaml
from tests.waiting import eventually
from ticketd import admin
from ticketd.clock import utcnow
from ticketd.domain.notices import DELIVERY_FAILED, Notice
from ticketd.store import tickets as store
from ticketd.store.tables import outbox

CUSTOMER, COLLEAGUE, ALICE = "cust@example.org", "colleague@example.org", "alice@example.com"
GATE = 4242   # the advisory lock the test holds to stop a transaction just after its outbox insert


def _desk(make_app, postgres_url, sink):
    """A ticket of CUSTOMER's, its acknowledgement pending; no worker runs, each job is run here by hand."""
    app = make_app(postgres_url, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    receive(app, customer_mail(sender=CUSTOMER))
    with app.engine.connect() as conn:
        ticket_id = conn.execute(select(outbox.c.ticket_id)).scalar_one()
    return app, ticket_id


def _reply(ticket_id: int, words: str, recipient: str = CUSTOMER) -> Notice:
    return Notice(template="requester/agent_reply", recipient=recipient, ticket_id=ticket_id, auto_submitted=None,
                  from_name="Alice", context={"text": words, "agent_name": "Alice"})


def _committed(app, **where) -> list[int]:
    """Ids of the committed outbox rows matching `where`, as another connection sees them now."""
    with app.engine.connect() as conn:
        return conn.execute(select(outbox.c.id).filter_by(**where).order_by(outbox.c.id)).scalars().all()


def _waiting_on(app, wait_event: str | None = None) -> int:
    """How many sessions of this database wait for a lock (of this kind: 'advisory', 'transactionid', ...)."""
    with app.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND (CAST(:kind AS text) IS NULL OR wait_event = :kind)"), {"kind": wait_event}).scalar_one()


def _outbox_id_of(app, message_id_header: str) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.message_id == message_id_header.strip("<>"))
                            ).scalar_one()


def _queue(app, *notices: Notice) -> list[int]:
    with app.engine.begin() as conn:
        return queue_notices(conn, app, list(notices), utcnow())


def _due_now(app, outbox_id: int) -> None:
    with app.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(next_attempt_at=utcnow()))


def _in_thread(work) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_transaction_queuing_mail_for_a_ticket_waits_for_the_one_that_holds_it(make_app, postgres_url, sink):
    """An agent's reply still being written when the admin closes the ticket: the close waits, and its mail follows."""
    app, tid = _desk(make_app, postgres_url, sink)
    [ack] = _committed(app, recipient=CUSTOMER)

    with app.engine.connect() as first:
        with first.begin():
            # What every path that queues mail about a ticket does (pipeline, timers, assignment, admin, delivery).
            store.lock_ticket(first, tid)
            [reply] = queue_notices(first, app, [_reply(tid, "Try turning it off and on.")], utcnow())
            closing = _in_thread(lambda: admin.close(app, tid, "solved"))
            # The second connection blocks on the ticket's row lock, before it has taken an outbox id.
            assert wait_until(lambda: _waiting_on(app) == 1 or not closing.is_alive())
            assert closing.is_alive(), "the close did not wait for the ticket"
            assert _committed(app, recipient=CUSTOMER) == [ack]
        closing.join(10)
    line = _committed(app, recipient=CUSTOMER, ticket_id=tid)
    assert line[:2] == [ack, reply] and len(line) == 3   # the reply, committed first, has the lower id
    # Jobs run newest first still send the line in id order, so in commit order.
    for _ in line:
        for outbox_id in reversed(line):
            deliver(app, outbox_id)
    got = sink.wait_for(3)
    assert [_outbox_id_of(app, m.message["Message-ID"]) for m in got] == line


class Gate:
    """Holds the first delivery-failed row's transaction just after its insert, until the test opens the gate.

    A trigger in the test's database, not in ticketd: the moment between an
    outbox insert and its commit is too short to meet by timing alone.
    """

    def __init__(self, postgres_url: str) -> None:
        self.engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        self.conn = self.engine.connect()

    def shut(self) -> None:
        self.conn.execute(text("CREATE SEQUENCE test_gate"))
        self.conn.execute(text(f"""
            CREATE FUNCTION test_hold_first_failure() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.template = '{DELIVERY_FAILED}' AND nextval('test_gate') = 1 THEN
                    PERFORM pg_advisory_xact_lock({GATE});
                END IF;
                RETURN NEW;
            END $$"""))
        self.conn.execute(text("CREATE TRIGGER test_hold_first_failure AFTER INSERT ON outbox"
                               " FOR EACH ROW EXECUTE FUNCTION test_hold_first_failure()"))
        self.conn.execute(text("SELECT pg_advisory_lock(:gate)"), {"gate": GATE})

    def open(self) -> None:
        self.conn.execute(text("SELECT pg_advisory_unlock(:gate)"), {"gate": GATE})

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def gate(postgres_url):
    held = Gate(postgres_url)
    yield held
    held.close()


def test_two_mails_failing_at_once_tell_the_assignee_in_commit_order(make_app, postgres_url, sink, gate):
    """Two recipients of one ticket refuse their mail (550) at once: each failure queues the assignee's notice.

    The second failure must wait for the first, which holds the ticket while
    its notice is not yet committed: otherwise its notice, queued later,
    commits first, and a worker may take it before the first is visible.
    """
    app, tid = _desk(make_app, postgres_url, sink)
    admin.assign(app, tid, ALICE)
    [to_customer] = _committed(app, recipient=CUSTOMER)
    [to_colleague] = _queue(app, _reply(tid, "Copy for you.", recipient=COLLEAGUE))
    later = utcnow() + timedelta(hours=1)
    with app.engine.begin() as conn:   # neither is due while the assignment notice goes out
        conn.execute(update(outbox).where(outbox.c.id.in_([to_customer, to_colleague])).values(next_attempt_at=later))
    for assigned in _committed(app, recipient=ALICE):
        deliver(app, assigned)
    sink.reject = {CUSTOMER, COLLEAGUE}
    gate.shut()
    _due_now(app, to_customer)   # the colleague's is not: the first job must not take it along

    first = _in_thread(lambda: deliver(app, to_customer))
    assert wait_until(lambda: _waiting_on(app, "advisory") == 1)   # its notice inserted, not committed
    _due_now(app, to_colleague)
    second = _in_thread(lambda: deliver(app, to_colleague))
    eventually(lambda: _waiting_on(app) == 2 or not second.is_alive())
    committed_while_first_open = _committed(app, template=DELIVERY_FAILED)
    gate.open()
    first.join(10)
    second.join(10)

    notices = _committed(app, template=DELIVERY_FAILED, recipient=ALICE, ticket_id=tid)
    assert len(notices) == 2
    # Rows committed earlier have lower ids: what was visible while the
    # first notice was uncommitted is the start of the line, here nothing.
    assert committed_while_first_open == notices[:len(committed_while_first_open)], (
        f"notice {committed_while_first_open} committed before {notices[0]}, queued earlier")
