"""The outbox sweep re-enqueues a row only when its job can have been lost, never piling jobs onto a queue.

A mail waiting for a worker that is not running keeps one job in Redis, not
one more every few seconds; a job Redis lost (flushed) is made again; once
a worker starts, each mail goes out once.
"""

from __future__ import annotations

import json
import smtplib
import time

import pytest
import redis
from sqlalchemy import create_engine, select

from outbound.delivery import resend_after_seconds, sweep_outbox
from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbound_processes import _smtp_port
from tests.waiting import eventually
from ticketd.store.tables import outbox


def _send_mail_jobs(client: redis.Redis, namespace: str = "ticketd") -> dict[int, int]:
    """Jobs per outbox id that dramatiq holds for send_mail, waiting or in a worker's hands (its `.msgs` hashes)."""
    jobs: dict[int, int] = {}
    for key in (f"{namespace}:ticketd.msgs", f"{namespace}:ticketd.DQ.msgs"):
        for data in client.hvals(key):
            message = json.loads(data)
            if message["actor_name"] == "send_mail":
                jobs[message["args"][0]] = jobs.get(message["args"][0], 0) + 1
    return jobs


def _pending_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.state == "pending").order_by(outbox.c.id)
                            ).scalars().all()


def _watch(client: redis.Redis, seconds: float) -> tuple[list[dict[int, int]], set[int]]:
    """The send_mail jobs per row, and the lengths of the queue, sampled every 0.2 s for `seconds`."""
    samples, lengths = [], set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(_send_mail_jobs(client))
        lengths.add(client.llen("ticketd:ticketd"))
        time.sleep(0.2)
    return samples, lengths


@pytest.mark.redis
def test_no_worker_keeps_one_job_per_mail_a_lost_job_is_made_again_and_a_worker_sends_each_once(
        tmp_path, sqlite_url, sink, redis_server, processes):
    # sweep_seconds 0.2 (write_config): a sweep every 0.2 s and a row's job looked for every 5 s.
    config = write_config(tmp_path, sqlite_url, rules=NO_AGENTS,
                          extra=outbound_yaml(sink.port) + f"redis_url: {redis_server.url}\n")
    run = DaemonProcess(config, "run").start()
    processes.append(run)
    port = _smtp_port(config)
    client = redis.Redis.from_url(redis_server.url)
    engine = create_engine(sqlite_url)
    try:
        for n in range(2):
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                smtp.send_message(customer_mail(subject=f"Case {n}", sender=f"c{n}@example.org"))
        rows = eventually(lambda: len(ids := _pending_ids(engine)) == 2 and ids, timeout=15)
        assert rows

        # No worker: over three times the interval at which the sweep looks again, one job per mail.
        samples, lengths = _watch(client, 3 * resend_after_seconds(0.2) + 1)
        assert max(max(s.values(), default=0) for s in samples) == 1, samples
        assert samples[-1] == {row: 1 for row in rows}
        assert len(lengths) == 1, lengths      # the queue (with the tickets' assignment jobs) does not grow

        # Redis loses its jobs: the sweep makes them again, one each.
        client.flushall()
        assert eventually(lambda: _send_mail_jobs(client) == {row: 1 for row in rows},
                          timeout=resend_after_seconds(0.2) + 5)
        samples, lengths = _watch(client, resend_after_seconds(0.2) + 1)
        assert max(max(s.values(), default=0) for s in samples) == 1, samples
        assert lengths == {2}, lengths        # the lost assignment jobs are the assignment sweep's to redo

        processes.append(DaemonProcess(config, "worker").start())
        sink.wait_for(2, timeout=20)
        got = sink.settle(1.5)
        assert sorted(m.rcpt_tos[0] for m in got) == ["c0@example.org", "c1@example.org"]   # each once
        assert eventually(lambda: _pending_ids(engine) == [] and _send_mail_jobs(client) == {}, timeout=10)
    finally:
        client.close()
        engine.dispose()


def test_in_process_a_job_not_taken_is_made_again_at_doubling_intervals(make_app, sqlite_url, sink):
    """Without Redis to look into, the sweep backs off: a row whose jobs are not taken gets one more each time
    the interval doubles, not one every interval."""
    app = make_app(sqlite_url, outbound_port=sink.port, rules=NO_AGENTS, extra=outbound_yaml(sink.port))
    receive(app, customer_mail())
    [row] = outbox_rows(app)
    made = []
    app.enqueue = lambda name, args: made.append((name, args, time.monotonic()))   # nobody takes them
    interval = resend_after_seconds(app.settings.sweep_seconds)
    start = time.monotonic()
    while time.monotonic() - start < 2.5 * interval:   # at 0, then once at 1 x interval; the next is at 3 x
        sweep_outbox(app, grace_seconds=0)
        time.sleep(0.1)
    assert [(name, args) for name, args, _ in made] == [("send_mail", (row["id"],))] * 2
    assert made[1][2] - made[0][2] >= interval
