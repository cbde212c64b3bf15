"""A wake-up or due date lives only as long as its status: leaving `postponed` or `in_development` clears it.

`postponed_until` stayed on a ticket the wake-up timer had opened again, and
`tickets show --json` showed it as if the ticket still slept. Whatever moves
the ticket on (the wake-up timer, an agent's command, closing) clears the date
of the status it leaves; its history keeps the date (the wake-up event says
which one it woke from). The engineer and tracker key of `#dev` stay: they say
which issue the ticket waited for, after the fix too.
"""

from __future__ import annotations

import json
import smtplib
from datetime import datetime

import pytest

from tests.cli import cli_ok
from tests.conftest import TWO_AGENTS, free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import Sink, customer_mail, wait_until
from ticketd.app import build_app
from ticketd.settings import load_settings
from ticketd.store import tickets as store

WHEN = datetime(2030, 6, 1, 12, 0)


@pytest.mark.parametrize("ticket, to, cleared", [
    ({"postponed_until": WHEN, "dev_due": None}, "open", {"postponed_until": None}),
    ({"postponed_until": WHEN, "dev_due": None}, "in_development", {"postponed_until": None}),
    ({"postponed_until": None, "dev_due": WHEN}, "closed", {"dev_due": None}),
    ({"postponed_until": None, "dev_due": WHEN}, "postponed", {"dev_due": None}),
    ({"postponed_until": WHEN, "dev_due": WHEN}, "waiting_customer", {"postponed_until": None, "dev_due": None}),
    ({"postponed_until": WHEN, "dev_due": None}, "postponed", {}),       # a new wake-up is the caller's
    ({"postponed_until": None, "dev_due": None}, "open", {}),            # nothing to clear, nothing written
])
def test_the_dates_a_status_change_leaves_behind(ticket, to, cleared):
    from ticketd.domain.timers import dates_left_behind

    assert dates_left_behind(ticket, to) == cleared


def _json(config, ticket_id: int = 1) -> dict:
    return json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))


def test_every_way_out_of_postponed_and_in_development_clears_its_date(tmp_path, sqlite_url):
    sink = Sink(free_port()).start()
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=TWO_AGENTS, smtp_port=port, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    daemon = DaemonProcess(config).start()

    def ticket() -> dict:
        with app.engine.connect() as conn:
            return store.get_ticket(conn, 1)

    def mail(msg) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)

    def to(recipient: str, subject: str) -> list:
        return [m.message for m in sink.messages
                if recipient in m.rcpt_tos and str(m.message["Subject"]).startswith(subject)]

    try:
        mail(customer_mail(subject="Printer on fire"))
        [notice] = wait_until(lambda: to("alice@example.com", "[#1] Assigned to you"), timeout=20)

        def command(text: str, until) -> dict:
            mail(build_mail("alice@example.com", text + "\n", to=str(notice["Reply-To"]),
                            subject="Re: " + str(notice["Subject"]), in_reply_to=str(notice["Message-ID"])))
            return wait_until(lambda: until(ticket()) and ticket(), timeout=20)

        # The wake-up timer: open again, no date left; the history says which date it woke from.
        slept = command("#postpone 2s", lambda t: t["status"] == "postponed")["postponed_until"]
        wait_until(lambda: ticket()["status"] == "open", timeout=20)
        shown = _json(config)
        assert (shown["status"], shown["postponed_until"]) == ("open", None)
        [woke] = [e for e in shown["events"] if e["kind"] == "status" and e["from"] == "postponed"]
        assert woke["actor"] == "system:timers" and woke["to"] == "open"
        assert woke["reason"] == f"postponed until {slept.replace(microsecond=0).isoformat()}Z reached"

        # A customer's reply leaves a postponed ticket postponed (PRODUCT.md reopens only
        # waiting_customer, solution_proposed and closed), its wake-up with it.
        later = command("#postpone 1d", lambda t: t["status"] == "postponed")["postponed_until"]
        [ack] = to("cust@example.org", "[#1]")[:1]
        mail(customer_mail(subject="Re: [#1] Printer on fire", body="Any news?\n",
                           In_Reply_To=str(ack["Message-ID"]), References=str(ack["Message-ID"])))
        wait_until(lambda: to("alice@example.com", "[#1] ") and any(
            "Any news?" in m.get_body(("plain",)).get_content() for m in to("alice@example.com", "[#1] ")))
        assert (ticket()["status"], ticket()["postponed_until"]) == ("postponed", later)

        # An agent's command out of postponed.
        assert command("#status open", lambda t: t["status"] == "open")["postponed_until"] is None

        # In development, then postponed: the due date goes, the engineer and tracker key stay.
        command("#dev bob@example.com PRJ-7 5d", lambda t: t["status"] == "in_development")
        moved = command("#postpone 3d", lambda t: t["status"] == "postponed")
        assert (moved["dev_due"], moved["dev_engineer"], moved["dev_tracker_key"]) == (
            None, "bob@example.com", "PRJ-7")
        # In development again, then closed: neither date stays.
        command("#dev bob@example.com PRJ-7 5d", lambda t: t["status"] == "in_development")
        command("#close fixed in PRJ-7", lambda t: t["status"] == "closed")
        shown = _json(config)
        assert (shown["status"], shown["postponed_until"]) == ("closed", None)
        assert shown["dev"] == {"engineer": "bob@example.com", "tracker_key": "PRJ-7", "due": None}
    finally:
        daemon.stop()
        sink.stop()
        app.engine.dispose()
