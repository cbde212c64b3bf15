"""A robot's marker is read in every field of its name, not only the first: a Sieve rule or list manager
that adds its own `Auto-Submitted: no`, `Precedence` or `X-Loop` on top hid the auto-responder's own field
below it, and the out-of-office answer was acknowledged (PRODUCT.md "Loops and robots", RFC 3834 section 5).
One field as before: `Auto-Submitted: no` alone is a person's mail."""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, ticket_events, wait_until
from ticketd.app import build_app
from ticketd.settings import load_settings
from ticketd.store.tables import messages

# (sender, [(field, value), ...] top first, what the not_answered reason names); one mail per sender.
ROBOTS = [
    ("r1@example.org", [("Auto-Submitted", "no"), ("Auto-Submitted", "auto-replied")], "auto-submitted: auto-replied"),
    ("r2@example.org", [("Precedence", "first-class"), ("Precedence", "bulk")], "precedence: bulk"),
    ("r3@example.org", [("X-Loop", "support@example.com"), ("X-Loop", "r3@example.org")], "x-loop: r3@example.org"),
    ("r4@example.org", [("Precedence", "first-class"), ("Precedence", "list")], "mailing list"),
]
PEOPLE = [
    ("p1@example.org", [("Auto-Submitted", "no")]),
    ("p2@example.org", [("Auto-Submitted", "no"), ("Auto-Submitted", "no (by hand)")]),
    ("p3@example.org", [("X-Loop", "support@example.com"), ("X-Loop", "info@example.org")]),
]


def _mail(n: int, sender: str, fields: list[tuple[str, str]]):
    msg = customer_mail(subject=f"About order {n}", sender=sender)
    for name, value in fields:
        msg[name] = value   # appended in order: the first is the topmost field
    return msg


def test_a_robot_marker_below_another_field_of_its_name_is_read(tmp_path, sink, processes):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", smtp_port=port, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    processes.append(DaemonProcess(config).start())

    with smtplib.SMTP("127.0.0.1", port) as client:
        for n, (sender, fields, *_) in enumerate(ROBOTS + PEOPLE):
            client.send_message(_mail(n, sender, fields))

    def acknowledged(address: str) -> bool:
        return any(address in m.rcpt_tos for m in sink.messages)

    # The people are answered (and the robots before them were processed first, in order of arrival).
    wait_until(lambda: all(acknowledged(sender) for sender, _ in PEOPLE), timeout=30)
    sink.settle(1.0)
    assert [sender for sender, *_ in ROBOTS if acknowledged(sender)] == []

    with app.engine.connect() as conn:
        stored = {row.from_addr: row for row in conn.execute(select(messages))}
    for sender, _, says in ROBOTS:
        assert stored[sender].auto_generated is True, sender
        [event] = ticket_events(app, stored[sender].ticket_id, "not_answered")
        assert says in event["reason"].lower(), event["reason"]
    for sender, _ in PEOPLE:
        assert stored[sender].auto_generated is False, sender
    app.engine.dispose()
