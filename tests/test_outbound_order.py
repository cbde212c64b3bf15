"""Mail to one recipient about one ticket leaves in the order it was queued (outbox id order)."""

from __future__ import annotations

import threading

from sqlalchemy import update

from ingest.match import reply_address
from outbound.delivery import deliver, sweep_outbox
from outbound.outbox import queue_notices
from tests.desk import body_text, build_mail
from tests.sink import customer_mail, outbox_rows, receive, running, submit, wait_until
from tests.test_outbound import outbound_yaml
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice
from ticketd.store.tables import outbox

CUSTOMER, FOLLOWER, ALICE = "cust@example.org", "follower@example.org", "alice@example.com"
NO_AGENTS = "agents: []\nroutes: []\n"


class Jobs:
    """Stands in for the broker: what delivery enqueues is kept, and run on demand in order."""

    def __init__(self, app) -> None:
        self.app, self.queued = app, []
        app.enqueue = lambda name, args: self.queued.append(args[0])

    def run(self) -> None:
        while self.queued:
            deliver(self.app, self.queued.pop(0))


def _desk(make_app, db_url, sink, **kw):
    app = make_app(db_url, outbound_port=sink.port, rules=NO_AGENTS, extra=outbound_yaml(sink.port, **kw))
    receive(app, customer_mail(sender=CUSTOMER))
    [ack] = outbox_rows(app)
    assert deliver(app, ack["id"]) == "sent"
    sink.wait_for(1)
    sink.messages.clear()
    return app, ack["ticket_id"]


def _reply(ticket_id: int, text: str, recipient: str = CUSTOMER) -> Notice:
    # An agent's words (auto_submitted None): outside the per-recipient cap, so any number can be queued.
    return Notice(template="requester/agent_reply", recipient=recipient, ticket_id=ticket_id, auto_submitted=None,
                  from_name="Alice", context={"text": text, "agent_name": "Alice"})


def _queue(app, *notices: Notice) -> list[int]:
    with app.engine.begin() as conn:
        ids = queue_notices(conn, app, list(notices), utcnow())
    assert len(ids) == len(notices)
    return ids


def _texts(sink, recipient: str = CUSTOMER) -> list[str]:
    return [body_text(m.message).splitlines()[0] for m in sink.messages if m.rcpt_tos == [recipient]]


def _state(app, outbox_id: int) -> str:
    return next(r["state"] for r in outbox_rows(app) if r["id"] == outbox_id)


def test_the_job_of_the_later_mail_never_sends_it_first(make_app, db_url, sink):
    """Reply and close queued together: whichever job a worker takes first, the reply leaves first."""
    app, tid = _desk(make_app, db_url, sink)
    jobs = Jobs(app)
    first, second = _queue(app, _reply(tid, "First words."), _reply(tid, "Second words."))
    assert deliver(app, second) is None        # its own row waits; the earlier one goes
    assert _state(app, first) == "sent" and _state(app, second) == "pending"
    assert jobs.queued == [second]             # woken once the earlier one is out, not left to the sweep
    jobs.run()
    sink.wait_for(2)
    assert _texts(sink) == ["First words.", "Second words."]


def test_a_later_mail_waits_while_the_earlier_is_being_sent(make_app, db_url, sink):
    """A close a moment after the reply, taken by a second worker while the reply is still on the wire."""
    app, tid = _desk(make_app, db_url, sink)
    jobs = Jobs(app)
    [first] = _queue(app, _reply(tid, "First words."))
    sink.data_delay = 1.0
    sending = threading.Thread(target=deliver, args=(app, first))
    sending.start()
    try:
        wait_until(lambda: _state(app, first) == "sending")
        [second] = _queue(app, _reply(tid, "Second words."))
        assert deliver(app, second) is None
        assert _state(app, second) == "pending"
    finally:
        sending.join(10)
    sink.data_delay = 0
    jobs.run()
    sink.wait_for(2)
    assert _texts(sink) == ["First words.", "Second words."]
    assert [r["state"] for r in outbox_rows(app)] == ["sent"] * 3


def test_a_retrying_earlier_mail_holds_later_ones_until_it_fails_for_good(make_app, db_url, sink):
    app, tid = _desk(make_app, db_url, sink, retry_base=3600)
    jobs = Jobs(app)
    sink.fail_next(1)
    [first] = _queue(app, _reply(tid, "First words."))
    assert deliver(app, first) == "pending"                     # 451: backoff of an hour
    second, other = _queue(app, _reply(tid, "Second words."), _reply(tid, "To a follower.", FOLLOWER))
    assert deliver(app, second) is None
    # Its claim took the follower's mail along: another recipient's line is not held.
    assert _state(app, second) == "pending" and _state(app, other) == "sent"
    assert sweep_outbox(app, grace_seconds=0) == [second]   # swept, and still held back
    jobs.run()
    assert _state(app, second) == "pending"
    assert _texts(sink) == [] and _texts(sink, FOLLOWER) == ["To a follower."]
    # The earlier mail fails for good (550 on its retry): the later one is no longer held.
    with app.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == first).values(next_attempt_at=utcnow()))
    sink.reject = {CUSTOMER}
    assert deliver(app, first) == "failed"
    sink.reject = False
    assert jobs.queued == [second]
    jobs.run()
    sink.wait_for(2)
    assert _texts(sink) == ["Second words."]


def test_agent_replies_with_close_reach_each_customer_before_the_closed_mail(make_app, db_url, sink):
    """Two in-process delivery threads, the jobs of both mails queued at once (the case found by the audit)."""
    app = make_app(db_url, outbound_port=sink.port, extra=outbound_yaml(sink.port))
    customers = [f"c{i}@example.org" for i in range(4)]
    with running(app):
        for customer in customers:
            submit(app, customer_mail(sender=customer, subject=f"Printer of {customer}"))
        acked = wait_until(lambda: {m.rcpt_tos[0]: m.message for m in sink.messages if m.rcpt_tos[0] in customers}
                           if len({m.rcpt_tos[0] for m in sink.messages} & set(customers)) == 4 else None)
        sink.data_delay = 0.2
        for customer in customers:
            ticket_id = int(acked[customer]["X-Ticketd-Ticket"])
            to = reply_address(app.signer, "support@example.com", ticket_id, ALICE)
            submit(app, build_mail(ALICE, f"#close\n\nHere is the fix for {customer}.\n", to=to,
                                   subject=f"Re: [#{ticket_id}] Printer"))
        wait_until(lambda: all(len(_texts(sink, c)) == 3 for c in customers), timeout=30)
    for customer in customers:
        ack, reply, closed = _texts(sink, customer)
        assert reply == f"Here is the fix for {customer}." and closed != reply, (customer, _texts(sink, customer))
