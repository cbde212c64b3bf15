"""`tickets show` of a mail ticketd sent whose bytes `forget` erased: shown as erased, as a blanked mail in is."""

from __future__ import annotations

import json

from outbound.delivery import deliver as deliver_row
from tests.cli import cli_ok
from tests.sink import outbox_rows
from tests.test_erase import deliver, mail_bytes, ticket_of
from ticketd.assignment import sweep_unassigned


def test_a_sent_mail_without_its_bytes_reads_erased_not_empty(tmp_path, make_app, sqlite_url, sink):
    app = make_app(sqlite_url, outbound_port=sink.port)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes("other@example.org", "Scanner jammed", "<o1@client.example.org>",
                            cc="X Person <x@example.org>"))
    ticket_id = ticket_of(app, "o1@client.example.org")
    assert sweep_unassigned(app, grace_seconds=0) == 1     # the assignee's notice lists x among the recipients
    for row in outbox_rows(app):
        deliver_row(app, row["id"])
    before = json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))
    notice = next(m for m in before["messages"] if m["direction"] == "out" and m["template"].startswith("agent/"))
    assert notice["from"] == "support@example.com" and notice["subject"]

    cli_ok(config, "forget", "x@example.org", "--yes")

    shown = json.loads(cli_ok(config, "tickets", "show", str(ticket_id), "--json"))
    [kept] = [m for m in shown["messages"] if m.get("outbox_id") == notice["outbox_id"]]
    # Its row stays (to whom, when, sent); what it said is gone, and says so as an erased mail in does
    # (README.md, Erasure): no address "" nor subject "" that reads as a mail sent empty.
    assert (kept["direction"], kept["to"], kept["state"]) == ("out", notice["to"], "sent")
    assert (kept["from"], kept["from_name"], kept["subject"]) == (None, None, None)
    assert kept["text"] == kept["full_text"] == "[erased]" and kept["attachments"] == []
    text = cli_ok(config, "tickets", "show", str(ticket_id))
    assert "[erased]" in text
    assert not [line for line in text.splitlines() if line.startswith("--- ") and " None" in line]
