"""A postponed or in-development ticket merged away leaves its wake-up or due date behind, as any close does.

`tickets merge` closed the source ticket directly, so `tickets show` of a
merged postponed ticket still gave a `postponed_until` (and an in-development
one its due date), as if it still slept (dates_left_behind in
ticketd/domain/timers.py, tests/test_postponed_dates_cleared.py). The
engineer and tracker key of `#dev` stay, as they do when a fixed ticket closes.
"""

from __future__ import annotations

import email.utils
import json
import smtplib

from tests.cli import cli_ok
from tests.conftest import TWO_AGENTS, free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import customer_mail, wait_until


def test_merging_a_postponed_and_an_in_development_ticket_clears_their_dates(tmp_path, sink, processes):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", rules=TWO_AGENTS, smtp_port=port,
                          outbound_port=sink.port)
    processes.append(DaemonProcess(config).start())

    def mail(msg) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)

    def shown(ticket_id: int) -> dict:
        return json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))

    def assigned(ticket_id: int):
        found = [m.message for m in sink.messages if str(m.message["Subject"]).startswith(f"[#{ticket_id}] Assigned")]
        return found[0] if found else None

    for subject in ("Printer on fire", "Scanner jams", "Printer still on fire"):
        mail(customer_mail(subject=subject))
    for ticket_id, command, status in ((1, "#postpone 1d", "postponed"),
                                       (2, "#dev bob@example.com PRJ-7 5d", "in_development")):
        notice = wait_until(lambda ticket_id=ticket_id: assigned(ticket_id), timeout=20)
        agent = email.utils.parseaddr(str(notice["To"]))[1]   # round robin: Alice, then Bob
        mail(build_mail(agent, command + "\n", to=str(notice["Reply-To"]),
                        subject="Re: " + str(notice["Subject"]), in_reply_to=str(notice["Message-ID"])))
        wait_until(lambda ticket_id=ticket_id, status=status: shown(ticket_id)["status"] == status, timeout=20)
    assert shown(1)["postponed_until"] is not None and shown(2)["dev"]["due"] is not None
    wait_until(lambda: assigned(3), timeout=20)

    for source in (1, 2):
        cli_ok(config, "tickets", "merge", str(source), "3", "--yes")

    slept, developed = shown(1), shown(2)
    assert (slept["status"], slept["merged_into"], slept["postponed_until"]) == ("closed", 3, None)
    assert (developed["status"], developed["merged_into"]) == ("closed", 3)
    assert developed["dev"] == {"engineer": "bob@example.com", "tracker_key": "PRJ-7", "due": None}
    # The history says which status the merge closed them from.
    assert [(e["from"], e["to"]) for e in slept["events"] if e["kind"] == "merged_into"] == [("postponed", "closed")]
    assert [(e["from"], e["to"]) for e in developed["events"] if e["kind"] == "merged_into"] == [
        ("in_development", "closed")]
