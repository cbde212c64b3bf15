"""A burst of mail becomes tickets first: `ticketd run`'s own jobs and sweeps give way to the backlog, a while.

Real `ticketd run` with a sink for the burst; a real dramatiq worker on the in-process broker for the bound.
"""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from ingest.parse import dedupe_key
from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import wait_until
from ticketd.app import build_app
from ticketd.backlog import BACKLOG_MAILS, Backlog
from ticketd.pipeline import drain
from ticketd.settings import load_settings
from ticketd.store.inbox import store_raw
from ticketd.store.tables import raw_mail, tickets
from workers.runtime import GiveWayToBacklog, Sweeper

BURST = 60


def test_a_burst_is_made_into_tickets_before_its_acknowledgements_go_out(tmp_path, db_url, sink, processes):
    config = write_config(tmp_path, db_url, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    for n in range(BURST):   # all there when the daemon starts: its first pass finds the burst
        raw = build_mail(f"customer{n}@example.org", f"Order {n} never came.\n", subject=f"Order {n}").as_bytes()
        key, message_id = dedupe_key(raw)
        store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
    early: list[tuple[int, int]] = []

    def waiting() -> int:
        with app.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(raw_mail)
                                .where(raw_mail.c.state.in_(("received", "processing")))).scalar_one()

    def acknowledged() -> int:
        sent = sum(1 for m in sink.messages if str(m.message["Subject"]).startswith("[#"))
        left = waiting()   # read after: the mail waiting now waited when those were sent (none comes in)
        if sent and left:
            early.append((sent, left))
        return sent

    processes.append(DaemonProcess(config).start())
    wait_until(lambda: acknowledged() >= BURST, timeout=90, step=0.01)
    assert early == [], f"acknowledgements sent while mail waited to become tickets: {early[:3]}"
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == BURST
    app.engine.dispose()


def _worker_on(backlog: Backlog, hold_seconds: float):
    """A real dramatiq worker on an in-process broker that gives way to `backlog`; its actor notes when it ran."""
    broker = StubBroker()
    broker.add_middleware(GiveWayToBacklog(backlog, hold_seconds))
    ran: list[float] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def job() -> None:
        ran.append(time.monotonic())

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=20)
    worker.start()
    return worker, job, ran


def test_a_job_waits_for_the_backlog_to_go():
    backlog = Backlog()
    worker, job, ran = _worker_on(backlog, hold_seconds=30)
    try:
        job.send()
        wait_until(lambda: ran, timeout=5, step=0.01)   # no backlog: at once
        backlog.pending(BACKLOG_MAILS)
        assert backlog.waiting
        job.send()
        time.sleep(0.5)
        assert len(ran) == 1
        ended = time.monotonic()
        backlog.pending(BACKLOG_MAILS - 1)   # the next pass found only a few: the burst is over
        wait_until(lambda: len(ran) == 2, timeout=5, step=0.01)
        assert ran[1] - ended < 1
    finally:
        worker.stop()


def test_a_job_waits_no_longer_than_it_may_however_long_the_backlog_lasts():
    backlog = Backlog()
    backlog.pending(500)
    worker, job, ran = _worker_on(backlog, hold_seconds=1.0)
    try:
        sent = time.monotonic()
        job.send()
        wait_until(lambda: ran, timeout=10, step=0.01)
        assert 0.9 <= ran[0] - sent < 5 and backlog.waiting
    finally:
        worker.stop()


def test_the_sweep_waits_for_the_backlog_too(make_app, sqlite_url):
    """An unassigned ticket past the sweep's grace is the sweep's to assign; not while mail waits."""
    app = make_app(sqlite_url)
    raw = build_mail("cust@example.org", "The printer is on fire.\n").as_bytes()
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
    drain(app)   # no workers here: the ticket's assign_ticket job goes nowhere
    time.sleep(1.1)   # past the grace the sweep leaves to that job (ticketd.assignment.sweep_unassigned)

    def assignee():
        with app.engine.connect() as conn:
            return conn.execute(select(tickets.c.assignee)).scalar_one()

    app.backlog.pending(BACKLOG_MAILS)
    sweeper = Sweeper(app)
    sweeper.start()
    try:
        time.sleep(1.0)   # five rounds of sweep_seconds
        assert assignee() is None
        app.backlog.ended()
        assert wait_until(assignee, timeout=5, step=0.05) == "alice@example.com"
    finally:
        stopping = threading.Thread(target=sweeper.stop)
        stopping.start()
        stopping.join(10)
