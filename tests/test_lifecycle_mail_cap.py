"""The warning before a waiting ticket closes, and the closing mail, are not held back by the hourly cap.

The cap per recipient stops mail loops (PRODUCT.md "caps automatic mail per
recipient"). A customer with several tickets waiting on them reached it with
acknowledgements and warnings; the next warnings and every closing mail (with
its rating request) were logged as mail_suppressed while the close timer still
closed the tickets: the customer was never warned nor told. Timer-driven mail
about their own ticket answers no mail and comes at most twice per wait.
"""

from __future__ import annotations

import smtplib

from tests.conftest import ONE_AGENT, free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail, make_due
from tests.sink import customer_mail, wait_until
from ticketd.app import build_app
from ticketd.settings import load_settings
from ticketd.store import tickets as store
from ticketd.store.tables import events

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
RULES = ONE_AGENT + """\
timers:
  waiting_customer:  {warn_after: 1h, close_after: 2h}
  solution_proposed: {warn_after: 1h, close_after: 2h}
"""


def test_the_warning_and_the_closing_mail_reach_a_customer_over_the_cap(tmp_path, sink, processes):
    port = free_port()
    # Two automatic mails an hour: the first two acknowledgements use them up.
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", rules=RULES, smtp_port=port,
                          outbound_port=sink.port, extra="auto_mails_per_recipient_per_hour: 2\n")
    app = build_app(load_settings(config, environ={}))
    processes.append(DaemonProcess(config).start())

    def mail(msg) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)

    def to(recipient: str, subject: str, phrase: str = "") -> list:
        return [m.message for m in sink.messages if recipient in m.rcpt_tos
                and str(m.message["Subject"]).startswith(subject)
                and phrase in m.message.get_body(("plain",)).get_content()]

    def kinds(ticket_id: int, kind: str) -> list[dict]:
        with app.engine.connect() as conn:
            return [dict(e) for e in conn.execute(events.select().where(
                events.c.ticket_id == ticket_id, events.c.kind == kind)).mappings()]

    def status(ticket_id: int) -> str:
        with app.engine.connect() as conn:
            return store.get_ticket(conn, ticket_id)["status"]

    try:
        for n, subject in enumerate(("Order 1 missing", "Order 2 missing", "Order 3 missing"), 1):
            mail(customer_mail(subject=subject))
            wait_until(lambda n=n: to(ALICE, f"[#{n}] Assigned to you"), timeout=20)
        # The acknowledgement answers the customer's mail: it stays capped.
        [held] = wait_until(lambda: kinds(3, "mail_suppressed"))
        assert held["reason"].startswith("requester/ticket_opened: rate limit")

        for n, command in ((1, "#status waiting_customer"), (2, "#propose")):
            [notice] = to(ALICE, f"[#{n}] Assigned to you")
            mail(build_mail(ALICE, f"{command}\nWhich order number is it?\n", to=str(notice["Reply-To"]),
                            subject="Re: " + str(notice["Subject"]), in_reply_to=str(notice["Message-ID"])))
        wait_until(lambda: status(1) == "waiting_customer" and status(2) == "solution_proposed", timeout=20)

        for n in (1, 2):
            make_due(app, n, "warn")
        wait_until(lambda: to(CUSTOMER, "[#1] Order 1", "still waiting for your answer"), timeout=20)
        wait_until(lambda: to(CUSTOMER, "[#2] Order 2", "we proposed a solution on ticket"), timeout=20)
        for n in (1, 2):
            make_due(app, n, "close")
        wait_until(lambda: status(1) == "closed" and status(2) == "closed", timeout=20)
        closed = wait_until(lambda: len(to(CUSTOMER, "[#", "three numbers")) == 2 and to(CUSTOMER, "[#",
                                                                                         "three numbers"), timeout=20)
        assert sorted(str(m["Subject"]).split()[0] for m in closed) == ["[#1]", "[#2]"]
        assert kinds(1, "mail_suppressed") == [] and kinds(2, "mail_suppressed") == []
    finally:
        app.engine.dispose()
