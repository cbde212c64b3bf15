"""How many statements the jobs of one mail take (delivery, assignment): each is a round trip on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event

from outbound.delivery import deliver
from tests.conftest import ONE_AGENT
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_outbound import NO_AGENTS, outbound_yaml
from ticketd.assignment import assign

# One claim takes both acknowledgements: the claim, and for each 250 its record and the look-up of the mail
# waiting behind it in its line. The second one's own job found its row sent with a read of its own (`is_due`),
# 7 statements in all; it now knows its row is recorded sent.
TWO_ACKNOWLEDGEMENTS = 6
SECOND_JOB = 0
# The assignment of one ticket and its notice to the agent; it was 20, the ticket read again for the notice's
# mail after its UPDATE.
ONE_ASSIGNMENT = 19


def _statements(app, job: Callable[[], object]) -> tuple[int, object]:
    """Run the job; how many statements it executed, and what it returned."""
    executed: list[str] = []

    def count(conn, cursor, statement, *_):
        executed.append(statement)

    event.listen(app.engine, "before_cursor_execute", count)
    try:
        result = job()
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    return len(executed), result


def test_acknowledgements_delivered_by_one_claim_take_fewer_statements(make_app, db_url, sink):
    app = make_app(db_url, outbound_port=sink.port, rules=NO_AGENTS, extra=outbound_yaml(sink.port))
    receive(app, customer_mail(sender="first@example.org"), customer_mail(sender="second@example.org"))
    first, second = (row["id"] for row in outbox_rows(app))

    taken, state = _statements(app, lambda: deliver(app, first))
    assert state == "sent"
    assert taken <= TWO_ACKNOWLEDGEMENTS
    sink.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["first@example.org", "second@example.org"]

    taken, state = _statements(app, lambda: deliver(app, second))
    assert state is None
    assert taken <= SECOND_JOB
    assert [row["state"] for row in outbox_rows(app)] == ["sent", "sent"]


def test_an_assignment_takes_fewer_statements(make_app, db_url):
    app = make_app(db_url, rules=ONE_AGENT)
    receive(app, customer_mail(subject="Printer on fire"))
    [ack] = outbox_rows(app)

    taken, agent = _statements(app, lambda: assign(app, ack["ticket_id"]))
    assert agent == "alice@example.com"
    assert taken <= ONE_ASSIGNMENT
    notice = outbox_rows(app)[-1]
    assert (notice["template"], notice["recipient"], notice["ticket_id"]) == (
        "agent/ticket_assigned", "alice@example.com", ack["ticket_id"])
    assert b"Printer on fire" in bytes(notice["raw"])
