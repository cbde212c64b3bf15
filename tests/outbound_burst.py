"""A burst of mail for one smarthost, its jobs run one by one in the test's thread as a worker would run them."""

from __future__ import annotations

import time

from outbound.delivery import deliver
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbound_order import _queue, _reply


def capture_jobs(app) -> list[int]:
    """The send_mail jobs app.enqueue makes from now on, recorded instead of run: the list they go to."""
    jobs: list[int] = []
    app.enqueue = lambda name, args: jobs.append(args[0])
    return jobs


def queue_burst(app, jobs: list[int], replies: int) -> dict:
    """A customer's mail received and `replies` public replies queued on its ticket, each to a follower of its
    own; `jobs` holds the acknowledgement's and theirs; the acknowledgement's row."""
    receive(app, customer_mail())
    [ack] = outbox_rows(app)
    jobs[:] = [ack["id"], *_queue(app, *(_reply(ack["ticket_id"], f"Words {n}.", f"p{n}@example.org")
                                         for n in range(replies)))]
    return ack


def deliver_all(app, jobs: list[int]) -> None:
    """Run the jobs in order, and each job the runs make (the rest of a batch handed back), until none is left."""
    while jobs:
        deliver(app, jobs.pop(0))


def assert_burst_waits_its_retries(make_app, db_url: str, server, timeout: float) -> None:
    """An acknowledgement and six replies to a smarthost that never answers in time: the first send's timeout holds
    the rest, so the burst is done within a few timeouts over one connection, each mail pending after one attempt."""
    app = make_app(db_url, outbound_port=server.port, rules=NO_AGENTS,
                   extra=outbound_yaml(server.port, retry_base=30, timeout=timeout, max_attempts=3))
    jobs = capture_jobs(app)
    queue_burst(app, jobs, 6)
    started = time.monotonic()
    deliver_all(app, jobs)
    assert time.monotonic() - started < 4 * timeout
    rows = outbox_rows(app)
    assert len(rows) == 7 and {(r["state"], r["attempts"]) for r in rows} == {("pending", 1)}
    assert server.connections == 1
