"""`ticketd outbox retry` queues the failed mail again at the end of its line, holding its ticket as writers do.

A line is one recipient's mail about one ticket (ticketd/store/outbox.py):
it leaves in the order it was queued. A failed mail holds no line, so mail
queued after it went, or waits, on its own; the retry must not put the old
mail back in front of it, nor let it go while a later one is on the wire.
"""

from __future__ import annotations

import threading

from sqlalchemy import select

from outbound.delivery import deliver
from outbound.outbox import queue_notices
from tests.cli import cli_ok, run_cli
from tests.sink import customer_mail, outbox_rows, receive, ticket_events, wait_until
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbox_order_postgres import _reply, _waiting_on
from ticketd import admin
from ticketd.clock import utcnow
from ticketd.store import tickets as store
from ticketd.store.tables import outbox

CUSTOMER = "cust@example.org"


def _desk_with_a_failed_ack(make_app, db_url, sink, timeout: float = 2):
    """A ticket whose acknowledgement the smarthost refused for good (550); no worker runs: jobs are run here."""
    app = make_app(db_url, rules=NO_AGENTS, outbound_port=sink.port, extra=outbound_yaml(sink.port, timeout=timeout))
    receive(app, customer_mail(sender=CUSTOMER))
    [ack] = outbox_rows(app)
    sink.reject = True
    deliver(app, ack["id"])
    sink.reject = False
    [ack] = outbox_rows(app)
    assert ack["state"] == "failed"
    return app, ack


def _unsent(app) -> list[int]:
    with app.engine.connect() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.state.in_(("pending", "sending")))
                            .order_by(outbox.c.id)).scalars().all()


def _deliver_all(app) -> None:
    """Run every unsent row's job, newest first, and again until none is left (a job finds its row held
    while an earlier one of its line waits)."""
    for _ in range(5):
        for outbox_id in reversed(_unsent(app)):
            deliver(app, outbox_id)
    assert _unsent(app) == []


def _message_id(app, outbox_id: int) -> str:
    [row] = [r for r in outbox_rows(app) if r["id"] == outbox_id]
    return f"<{row['message_id']}>"


def test_a_retried_mail_goes_after_mail_queued_while_it_lay_failed(tmp_path, db_url, make_app, sink):
    app, ack = _desk_with_a_failed_ack(make_app, db_url, sink)
    config = tmp_path / "ticketd.yaml"
    [closing] = admin.close(app, ack["ticket_id"], "solved")   # queued after the failure, not sent yet

    said = cli_ok(config, "outbox", "retry", str(ack["id"]))

    [again] = [r for r in outbox_rows(app) if r["message_id"] == ack["message_id"]]
    assert again["id"] > closing, "the retried mail must queue behind the mail already waiting in its line"
    assert (again["state"], again["attempts"], bytes(again["raw"])) == ("pending", 0, bytes(ack["raw"]))
    assert f"outbox {ack['id']}:" in said and f"pending again as outbox {again['id']}" in said, said
    [retried] = ticket_events(app, ack["ticket_id"], "delivery_retried")
    assert f"outbox {ack['id']} sent again as outbox {again['id']}" in retried["reason"], retried

    _deliver_all(app)
    got = sink.wait_for(2)
    # The closing mail first, as queued; the acknowledgement after it, the same mail as its first try.
    assert [m.message["Message-ID"] for m in got] == [_message_id(app, closing), f"<{ack['message_id']}>"]
    assert len(sink.settle(0.3)) == 2


def test_a_retried_mail_waits_for_a_later_one_of_its_line_on_the_wire(tmp_path, db_url, make_app, sink):
    app, ack = _desk_with_a_failed_ack(make_app, db_url, sink, timeout=30)
    config = tmp_path / "ticketd.yaml"
    [closing] = admin.close(app, ack["ticket_id"], "solved")
    sink.data_delay = 5   # the closing mail is being sent while the admin retries
    sending = threading.Thread(target=deliver, args=(app, closing), daemon=True)
    sending.start()
    wait_until(lambda: [r for r in outbox_rows(app) if r["id"] == closing and r["state"] == "sending"])

    cli_ok(config, "outbox", "retry", str(ack["id"]))
    [again] = [r for r in outbox_rows(app) if r["message_id"] == ack["message_id"]]
    assert deliver(app, again["id"]) is None   # held: a mail of its line is on the wire
    sink.data_delay = 0
    sending.join(30)
    assert deliver(app, again["id"]) == "sent"
    got = sink.wait_for(2)
    assert [m.message["Message-ID"] for m in got] == [_message_id(app, closing), f"<{ack['message_id']}>"]


def test_retry_waits_for_a_transaction_holding_the_ticket(tmp_path, make_app, postgres_url, sink):
    """PostgreSQL: the retry takes the ticket's lock first, as every writer of its outbox rows does, so
    the retried mail's place is after mail a transaction still holding the ticket has queued."""
    app, ack = _desk_with_a_failed_ack(make_app, postgres_url, sink)
    config = tmp_path / "ticketd.yaml"
    done: list = []
    with app.engine.connect() as first:
        with first.begin():
            store.lock_ticket(first, ack["ticket_id"])
            [reply] = queue_notices(first, app, [_reply(ack["ticket_id"], "Try turning it off and on.")], utcnow())
            retry = threading.Thread(target=lambda: done.append(run_cli(config, "outbox", "retry", str(ack["id"]))),
                                     daemon=True)
            retry.start()
            assert wait_until(lambda: _waiting_on(app) == 1 or not retry.is_alive(), timeout=20)
            assert retry.is_alive(), f"the retry did not wait for the ticket: {done}"
        retry.join(30)
    assert done and done[0].returncode == 0, done
    [again] = [r for r in outbox_rows(app) if r["message_id"] == ack["message_id"]]
    assert again["id"] > reply
    _deliver_all(app)
    got = sink.wait_for(2)
    assert [m.message["Message-ID"] for m in got] == [_message_id(app, reply), f"<{ack['message_id']}>"]
