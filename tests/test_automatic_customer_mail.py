"""An out-of-office answer from the customer is kept as what it is: an automatic mail that changed nothing.

It was logged as `customer_replied` and moved the ticket's `updated_at`; the
close timer then closed the ticket for "no answer while we waited for you",
and the history read as a contradiction. Like the other events that change
nothing (an agent's out-of-office, `not_relayed`; a rejected command), it
leaves `updated_at` alone.
"""

from __future__ import annotations

import json
import smtplib

from tests.cli import cli_ok
from tests.conftest import ONE_AGENT, free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail, make_due
from tests.sink import customer_mail, wait_until
from ticketd.app import build_app
from ticketd.settings import load_settings

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
RULES = ONE_AGENT + """\
timers:
  waiting_customer: {warn_after: 1h, close_after: 2h}
"""


def test_an_out_of_office_answer_to_the_warning_changes_nothing_and_says_so(tmp_path, sink, processes):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", rules=RULES, smtp_port=port,
                          outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    processes.append(DaemonProcess(config).start())

    def mail(msg) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)

    def to(recipient: str, phrase: str) -> list:
        return [m.message for m in sink.messages
                if recipient in m.rcpt_tos and phrase in m.message.get_body(("plain",)).get_content()]

    def shown() -> dict:
        return json.loads(cli_ok(config, "tickets", "show", "1", "--json"))

    try:
        mail(customer_mail(subject="Fax broken"))
        [notice] = wait_until(lambda: [m.message for m in sink.messages if ALICE in m.rcpt_tos], timeout=20)
        mail(build_mail(ALICE, "#status waiting_customer\nWhich fax model is it?\n", to=str(notice["Reply-To"]),
                        subject="Re: " + str(notice["Subject"]), in_reply_to=str(notice["Message-ID"])))
        wait_until(lambda: shown()["status"] == "waiting_customer", timeout=20)
        make_due(app, 1, "warn")
        [warning] = wait_until(lambda: to(CUSTOMER, "still waiting for your answer"), timeout=20)
        before = shown()
        told_alice = len([m for m in sink.messages if ALICE in m.rcpt_tos])

        mail(build_mail(CUSTOMER, "I am out of the office until Monday.\n", to=str(warning["Reply-To"]),
                        subject="Automatic reply: " + str(warning["Subject"]), in_reply_to=str(warning["Message-ID"]),
                        Auto_Submitted="auto-replied", X_Auto_Response_Suppress="All"))
        [automatic] = wait_until(lambda: [e for e in shown()["events"] if e["kind"] == "automatic_mail"], timeout=20)
        assert automatic["actor"] == CUSTOMER
        assert automatic["reason"].startswith("automatic mail (Auto-Submitted: auto-replied), changes nothing; mail <")
        after = shown()
        assert not [e for e in after["events"] if e["kind"] == "customer_replied"]
        assert (after["status"], after["updated_at"]) == ("waiting_customer", before["updated_at"])
        assert len(after["messages"]) == len(before["messages"]) + 1      # kept all the same
        assert after["messages"][-1]["auto_generated"] is True

        make_due(app, 1, "close")
        wait_until(lambda: shown()["status"] == "closed", timeout=20)
        assert [e["kind"] for e in shown()["events"]][-2:] == ["automatic_mail", "auto_closed"]
        assert len([m for m in sink.messages if ALICE in m.rcpt_tos]) == told_alice   # no news for the assignee
    finally:
        app.engine.dispose()
