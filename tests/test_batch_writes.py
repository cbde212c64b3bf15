"""Writing processed mail: batches with a failing mail, the write queue, acknowledgements first."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, exc, select

from ingest.parse import dedupe_key
from tests.sink import customer_mail
from tests.waiting import eventually
from ticketd.assignment import assign, assign_batch
from ticketd.clock import utcnow
from ticketd.pipeline import process_batch
from ticketd.store.db import durably, make_engine, reading
from ticketd.store.inbox import pending_ids, store_raw
from ticketd.store import tickets as store
from ticketd.store.tables import raw_mail, tickets
from ticketd.store.write_queue import acknowledgement_waiting


def _store(app, subject: str) -> int:
    raw = customer_mail(subject=subject).as_bytes()
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                     envelope_to=["support@example.com"]).raw_id


def test_a_processing_batch_lets_an_acknowledgement_commit_between_its_mails(make_app, sqlite_url):
    app = make_app(sqlite_url)
    batch = [_store(app, f"question {n}") for n in range(4)]
    intake = threading.Thread(target=lambda: _store(app, "arrives while a batch is processed"), name="intake")
    commits: list[str] = []

    def on_statement(conn, cursor, statement, *_):
        # The first mail of the batch is being written: a customer's mail now
        # arrives and its durable commit (before a 250) queues behind the batch.
        if statement.startswith("UPDATE raw_mail SET state") and not intake.is_alive() and not commits:
            intake.start()
            eventually(lambda: acknowledgement_waiting(app.engine), timeout=5)

    event.listen(app.engine, "before_cursor_execute", on_statement)
    # Commits take turns at the write lock, so this records their order.
    event.listen(app.engine, "commit", lambda conn: commits.append(threading.current_thread().name))
    outcomes = process_batch(app, batch)
    intake.join(timeout=10)

    assert [o.raw_id for o in outcomes] == batch            # all processed, in arrival order
    assert all(o.ticket_id for o in outcomes)
    # The batch committed its first mail, the intake went, then the other three.
    processor = threading.current_thread().name
    assert commits == [processor, "intake", processor]
    assert len(pending_ids(app.engine)) == 1                # only the late mail waits now
    with reading(app.engine) as conn:                       # the mails given back count one attempt
        attempts = conn.execute(select(raw_mail.c.attempts).where(raw_mail.c.id.in_(batch))).scalars().all()
    assert attempts == [1, 1, 1, 1]


def test_an_assignment_batch_lets_an_acknowledgement_commit_between_its_tickets(make_app, sqlite_url):
    app = make_app(sqlite_url, rules="agents:\n  - {email: a1@example.com, name: A1, groups: [support]}\n"
                                     "  - {email: a2@example.com, name: A2, groups: [support]}\n"
                                     "groups:\n  support: {assign: round_robin}\n")
    now = utcnow()
    with app.engine.begin() as conn:
        ids = [store.create_ticket(conn, subject=f"t{n}", status="new", requester=f"c{n}@example.org",
                                   group_name="support", created_at=now, updated_at=now) for n in range(4)]
    intake = threading.Thread(target=lambda: _store(app, "arrives while tickets are assigned"), name="intake")
    commits: list[str] = []

    def on_statement(conn, cursor, statement, *_):
        # The batch writes its first assignee: a customer's mail arrives.
        if statement.startswith("UPDATE tickets SET") and intake.ident is None:
            intake.start()
            eventually(lambda: acknowledgement_waiting(app.engine), timeout=5)

    event.listen(app.engine, "before_cursor_execute", on_statement)
    event.listen(app.engine, "commit", lambda conn: commits.append(threading.current_thread().name))
    given = assign_batch(app, ids[0])
    intake.join(timeout=10)

    assert given == {ids[0]: "a1@example.com"}        # one ticket, then the intake's turn
    assert commits == [threading.current_thread().name, "intake"]
    assert [assign(app, t) for t in ids[1:]] == ["a2@example.com", None, None]   # the next job takes the rest
    with reading(app.engine) as conn:
        assert conn.execute(select(tickets.c.assignee).order_by(tickets.c.id)).scalars().all() == [
            "a1@example.com", "a2@example.com", "a1@example.com", "a2@example.com"]


def test_without_anyone_waiting_a_batch_is_one_transaction(make_app, sqlite_url):
    app = make_app(sqlite_url)
    batch = [_store(app, f"question {n}") for n in range(4)]
    commits = []
    event.listen(app.engine, "commit", lambda conn: commits.append(1))
    outcomes = process_batch(app, batch)
    assert [o.raw_id for o in outcomes] == batch
    assert len(commits) == 1


def test_a_deadlock_rolls_the_batch_back_for_the_next_pass_and_quarantines_nothing(make_app, postgres_url):
    app = make_app(postgres_url)
    with app.engine.begin() as conn:
        # PostgreSQL reports a deadlock on the first two inserts of a ticket
        # (a sequence: nextval is not undone by the rollback).
        conn.exec_driver_sql("CREATE SEQUENCE ticket_inserts")
        conn.exec_driver_sql("""
            CREATE FUNCTION deadlock_twice() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('ticket_inserts') <= 2 THEN
                    RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01';
                END IF;
                RETURN NEW;
            END $$""")
        conn.exec_driver_sql("CREATE TRIGGER deadlock_twice BEFORE INSERT ON tickets "
                             "FOR EACH ROW EXECUTE FUNCTION deadlock_twice()")
    batch = [_store(app, "first"), _store(app, "second")]

    with pytest.raises(exc.OperationalError, match="deadlock detected"):
        process_batch(app, batch)      # the plain pass, then the one with savepoints, both hit it
    with reading(app.engine) as conn:
        states = conn.execute(select(raw_mail.c.state).order_by(raw_mail.c.id)).scalars().all()
    assert states == ["received", "received"]

    outcomes = process_batch(app, batch)   # the processor's next pass
    assert [o.quarantined for o in outcomes] == [None, None]
    assert all(o.ticket_id for o in outcomes)


def test_writers_of_other_processes_queue_on_the_lock_file_not_in_sqlites_busy_loop(make_app, sqlite_url):
    import fcntl

    app = make_app(sqlite_url)
    db_path = sqlite_url.split("///", 1)[1]
    stored: list[int] = []
    with open(db_path + "-writers.lock", "a+b") as other_process:   # another open file: as another process
        fcntl.flock(other_process, fcntl.LOCK_EX)
        writer = threading.Thread(target=lambda: stored.append(_store(app, "queued")), daemon=True)
        writer.start()
        time.sleep(0.5)
        # SQLite itself is free: only the queue holds the writer back.
        assert writer.is_alive() and not stored
        fcntl.flock(other_process, fcntl.LOCK_UN)
        writer.join(timeout=5)
    assert stored and pending_ids(app.engine) == stored


def test_a_workers_transaction_lets_a_waiting_acknowledgement_of_another_process_go_first(make_app, sqlite_url):
    # Two engines on one file queue like two processes: their own Python
    # locks, one lock file. The receiver's commit polls that file; a worker
    # of the back office waits on its process's lock and, without this
    # rule, takes the file first each time the holder lets go.
    app = make_app(sqlite_url)
    receiver = make_engine(sqlite_url)
    holding, holder_may_commit, order = threading.Event(), threading.Event(), []

    def hold() -> None:
        with app.engine.begin():
            holding.set()
            holder_may_commit.wait(10)
            order.append("holder")

    def acknowledge() -> None:
        with durably(receiver) as conn, conn.begin():
            order.append("acknowledgement")

    def work() -> None:
        with app.engine.begin():
            order.append("worker")

    holder = threading.Thread(target=hold)
    holder.start()
    # Inside its transaction, not merely with a connection checked out: a
    # holder still on its way to the lock would let the acknowledgement by.
    assert holding.wait(5)
    acknowledgement = threading.Thread(target=acknowledge)
    acknowledgement.start()
    eventually(lambda: acknowledgement_waiting(app.engine), timeout=5)
    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(0.01)        # the worker is now waiting to write
    holder_may_commit.set()
    for thread in (holder, acknowledgement, worker):
        thread.join(timeout=10)
    receiver.dispose()
    assert order == ["holder", "acknowledgement", "worker"]


def test_a_mail_failing_in_a_batch_is_quarantined_alone_and_the_others_are_written_once(
        make_app, db_url, tmp_path):
    # A broken acknowledgement template makes exactly the mails that get an
    # acknowledgement fail; an auto-submitted mail gets none and goes through.
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.txt.j2").write_text("Hello {{ no_such_variable }}\n")
    app = make_app(db_url, extra=f"templates_dir: {tmp_path / 'overrides'}\n")

    def stored(subject: str, **headers) -> int:
        raw = customer_mail(subject=subject, **headers).as_bytes()
        key, message_id = dedupe_key(raw)
        return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                         envelope_to=["support@example.com"]).raw_id

    first = stored("out of office", Auto_Submitted="auto-replied")
    failing = stored("a question")
    last = stored("on vacation", Auto_Submitted="auto-replied")
    outcomes = process_batch(app, [first, failing, last])

    assert [(o.raw_id, o.quarantined is not None) for o in outcomes] == [
        (first, False), (failing, True), (last, False)]
    assert "requester/ticket_opened" in outcomes[1].quarantined
    with reading(app.engine) as conn:
        states = dict(conn.execute(select(raw_mail.c.id, raw_mail.c.state)).all())
        ticket_subjects = sorted(conn.execute(select(tickets.c.subject)).scalars())
    assert states == {first: "done", failing: "quarantined", last: "done"}
    assert ticket_subjects == ["on vacation", "out of office"]   # written once, not once per attempt


def test_the_write_lock_is_held_until_the_commit_is_done(make_app, sqlite_url):
    """A writer queued behind a commit never meets SQLite's lock: with no busy timeout it would fail."""
    app = make_app(sqlite_url)
    app.engine.dispose()
    # Instrumentation: SQLite answers "database is locked" at once instead of
    # waiting, so any overlap between a COMMIT and the next BEGIN shows.
    event.listen(app.engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA busy_timeout=0"))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(150):
                _store(app, f"writer {n} {time.monotonic_ns()}")
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
    assert errors == []
    assert len(pending_ids(app.engine, limit=1000)) == 450
