"""Forget reaches an address spelled inside text: a Message-ID, the history naming it, mail that quotes them."""

from __future__ import annotations

import json
from pathlib import Path

from outbound.delivery import deliver as deliver_row
from tests.cli import cli_ok
from tests.sink import outbox_rows
from tests.test_erase import _every_value, deliver, mail_bytes, rows, ticket_of
from ticketd.assignment import sweep_unassigned
from ticketd.store import tables as t
from ingest.mentions import names_address


def test_forget_leaves_no_spelling_of_the_address_in_ids_reasons_or_the_mail_sent(
        tmp_path, make_app, db_url, sink):
    app = make_app(db_url, outbound_port=sink.port)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes("other@example.org", "Scanner jammed", "<o1@client.example.org>",
                            cc="X Person <x@example.org>"))
    theirs = ticket_of(app, "o1@client.example.org")
    assert sweep_unassigned(app, grace_seconds=0) == 1     # the assignee's notice lists x among the recipients
    sent = [row["id"] for row in outbox_rows(app)]
    for row_id in sent:
        deliver_row(app, row_id)      # one claim may take the rows behind it
    assert [row["state"] for row in outbox_rows(app)] == ["sent"] * len(sent)
    # x's mailer puts their address in the Message-ID; the reply to it names that id in References.
    deliver(app,
            mail_bytes("X@Example.org", "Re: Scanner jammed", "<1234.X@Example.org>", "Call me on 555-1234.",
                       In_Reply_To="<o1@client.example.org>"),
            mail_bytes("other@example.org", "Re: Scanner jammed", "<o2@client.example.org>", "Me too.",
                       In_Reply_To="<1234.X@Example.org>",
                       References="<o1@client.example.org> <1234.X@Example.org>"))
    assert ticket_of(app, "o2@client.example.org") == theirs
    pending = [row for row in outbox_rows(app) if row["state"] == "pending"]
    assert pending and any(names_address(bytes(row["raw"]), "x@example.org") for row in pending)
    spelled = {(table, column) for table, column, value in _every_value(app) if "x@example.org" in value}
    assert {("messages", "message_id"), ("events", "reason"), ("outbox", "raw"), ("raw_mail", "raw")} <= spelled

    done = json.loads(cli_ok(config, "forget", "x@example.org", "--yes", "--json"))

    assert [(table, column) for table, column, value in _every_value(app) if "x@example.org" in value] == []
    assert done["erased"]["outbox"] >= 2
    # The sent notice keeps its row (to whom, when) without its bytes; the rest still reads.
    notice = next(row for row in rows(app, t.outbox, t.outbox.c.id.in_(sent)) if row["template"].startswith("agent/"))
    assert (notice["state"], bytes(notice["raw"])) == ("sent", b"")
    [erased_id] = [m["message_id"] for m in rows(app, t.messages, t.messages.c.ticket_id == theirs)
                   if m["text"] == "[erased]"]
    assert erased_id == "1234.[erased]"
    shown = json.loads(cli_ok(config, "tickets", "show", str(theirs), "--json"))
    assert [m["text"] for m in shown["messages"] if m["direction"] == "in"] == ["Help, please.", "[erased]", "Me too."]
    assert any("mail <1234.[erased]>" in e["reason"] for e in shown["events"])


def test_an_address_split_by_a_soft_line_break_or_hidden_in_base64_is_found():
    split = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
             b"a public reply goes to: x@exa=\r\nmple.org\r\n")
    hidden = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              b"d3JpdGUgdG8gWEBFeGFtcGxlLm9yZw==\r\n")           # "write to X@Example.org"
    encoded = b"Subject: =?utf-8?b?eEBleGFtcGxlLm9yZw==?=\r\n\r\nnothing here\r\n"
    assert names_address(split, "x@example.org") and b"x@example.org" not in split
    assert names_address(hidden, "x@example.org") and names_address(encoded, "x@example.org")
    assert not names_address(split, "y@example.org") and not names_address(hidden, "mple.org ")


def test_an_address_inside_an_opaquely_signed_mail_is_found():
    """ticketd shows the text inside the signature (ingest.smime), so erasure searches it too."""
    signed = (Path(__file__).parent / "fixtures" / "smime_opaque_signed.eml").read_bytes()
    signed = signed.replace(b"To: support@example.com", b"To: help@example.com")
    assert b"support@example.com" not in signed   # only in the quoted attribution, inside the signature
    assert names_address(signed, "support@example.com") and not names_address(signed, "someone@example.com")
