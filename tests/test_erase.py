"""`ticketd tickets delete` and `ticketd forget` (GDPR Art. 17): what goes, what stays as a tombstone, and after."""

from __future__ import annotations

import email
import hashlib
import email.policy
import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.cli import cli_ok, run_cli, run_cli_at_a_terminal, run_cli_without_terminal
from tests.conftest import MINIMAL_RULES, free_port
from tests.sink import Sink, outbox_rows, wait_until
from ticketd.clock import utcnow
from ticketd.erase import erase_ticket, settle_interrupted_erasures
from ticketd.pipeline import drain, write_batch
from ticketd.prepare import InlinePreparer
from ticketd.prepare_pool import ProcessPreparer
from ticketd.store import tables as t
from ticketd.store.db import reading
from ticketd.store.files import attachment_path
from ticketd.store.inbox import load_raw, store_raw
from ticketd.store.outbox import insert_outbox_row
from ticketd.store.tickets import add_rating, add_reaction

TAGGING_RULES = MINIMAL_RULES.replace("then: {group: support}", "then: {group: support, tags: [vip]}")
SHARED = b"%PDF-1.4 the same manual, sent by two customers"
OWN = b"a photo only the first customer sent"


def mail_bytes(sender: str, subject: str, message_id: str, body: str = "Help, please.", *, cc: str | None = None,
               to: str = "support@example.com", files: tuple[tuple[str, bytes], ...] = (),
               **headers: str) -> bytes:
    """A mail as fixed bytes: the same bytes again are a redelivery (a MIME boundary is not left to chance)."""
    msg = EmailMessage()
    msg["From"] = f"Someone <{sender}>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    for filename, data in files:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    if files:
        msg.set_boundary("=-=-fixed-boundary-=-=")
    return msg.as_bytes(policy=email.policy.SMTP)


def deliver(app, *mails: bytes) -> None:
    """Through the real SMTP receiver, envelope recipients from To and Cc, then processed into tickets."""
    from ingest.smtp import Receiver

    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
            for raw in mails:
                head = email.message_from_bytes(raw)
                rcpts = [parseaddr(a)[1] for a in head.get_all("to", []) + head.get_all("cc", [])]
                client.sendmail(parseaddr(head["from"])[1], rcpts, raw)
        drain(app)
    finally:
        receiver.stop()


def rows(app, table, *where) -> list[dict]:
    with reading(app.engine) as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where).order_by(*table.primary_key)).mappings()]


def ticket_of(app, message_id: str) -> int:
    [row] = rows(app, t.messages, t.messages.c.message_id == message_id)
    return row["ticket_id"]


def message_ids_of(app, ticket_id: int) -> list[int]:
    return [m["id"] for m in rows(app, t.messages, t.messages.c.ticket_id == ticket_id)]


def everything_of(app, ticket_id: int) -> dict[str, list[dict]]:
    """Every row stored for a ticket, table by table."""
    mids = message_ids_of(app, ticket_id)
    return {
        "tickets": rows(app, t.tickets, t.tickets.c.id == ticket_id),
        "messages": rows(app, t.messages, t.messages.c.ticket_id == ticket_id),
        "attachments": rows(app, t.attachments, t.attachments.c.message_id.in_(mids)),
        "events": rows(app, t.events, t.events.c.ticket_id == ticket_id),
        "participants": rows(app, t.participants, t.participants.c.ticket_id == ticket_id),
        "ticket_tags": rows(app, t.ticket_tags, t.ticket_tags.c.ticket_id == ticket_id),
        "timers": rows(app, t.timers, t.timers.c.ticket_id == ticket_id),
        "ratings": rows(app, t.ratings, t.ratings.c.ticket_id == ticket_id),
        "reactions": rows(app, t.reactions, t.reactions.c.message_id.in_(mids)),
        "outbox": rows(app, t.outbox, t.outbox.c.ticket_id == ticket_id),
        "raw_mail": rows(app, t.raw_mail, t.raw_mail.c.ticket_id == ticket_id),
    }


def assert_tombstone(row: dict, why: str) -> None:
    assert (bytes(row["raw"]), row["size"], row["state"], row["ticket_id"]) == (b"", 0, "erased", None)
    assert (row["envelope_from"], row["envelope_to"], row["message_id"]) == (None, None, None)
    assert why in row["reason"] and row["reason"].startswith("erased 20")


# ---------------------------------------------------------------- tickets delete


def test_delete_erases_the_ticket_and_everything_stored_for_it_and_only_that(tmp_path, make_app, db_url):
    app = make_app(db_url, rules=TAGGING_RULES)
    config = tmp_path / "ticketd.yaml"
    first = mail_bytes("cust@example.org", "Printer on fire", "<m1@client.example.org>", cc="fol@example.org",
                       files=(("manual.pdf", SHARED), ("photo.jpg", OWN)))
    reply = mail_bytes("cust@example.org", "Re: Printer on fire", "<m2@client.example.org>", "Still burning.",
                       In_Reply_To="<m1@client.example.org>", References="<m1@client.example.org>")
    other = mail_bytes("other@example.org", "Scanner jammed", "<o1@client.example.org>",
                       files=(("manual.pdf", SHARED),))
    deliver(app, first, reply, other)
    doomed, kept = ticket_of(app, "m1@client.example.org"), ticket_of(app, "o1@client.example.org")
    assert ticket_of(app, "m2@client.example.org") == doomed
    first_msg, reply_msg = message_ids_of(app, doomed)
    [kept_msg] = message_ids_of(app, kept)
    with app.engine.begin() as conn:
        add_rating(conn, doomed, 5, 4, 5, reply_msg, utcnow())
        add_reaction(conn, first_msg, "like", "cust@example.org", utcnow())
        add_reaction(conn, kept_msg, "like", "other@example.org", utcnow())
    before = everything_of(app, doomed)
    # Every kind of row is there to be erased, so "none left" below proves something.
    assert all(before[name] for name in before), {name: len(r) for name, r in before.items()}
    raw_ids = [m["raw_mail_id"] for m in before["messages"]]
    dedupe_keys = [r["dedupe_key"] for r in before["raw_mail"]]
    kept_before = everything_of(app, kept)
    files = app.settings.attachments_dir
    shared, own = (attachment_path(files, a["sha256"]) for a in before["attachments"])
    assert shared.exists() and own.exists()

    done = json.loads(cli_ok(config, "tickets", "delete", str(doomed), "--yes", "--json"))

    assert done["ticket_id"] == doomed
    counts = done["erased"]
    assert {k: counts[k] for k in ("tickets", "messages", "attachments", "files_removed", "raw_mail", "ratings",
                                   "reactions", "tags", "participants")} == {
        "tickets": 1, "messages": 2, "attachments": 2, "files_removed": 1, "raw_mail": 2, "ratings": 1,
        "reactions": 1, "tags": 1, "participants": 2}
    assert counts["events"] == len(before["events"]) and counts["timers"] == len(before["timers"])
    assert counts["outbox"] == len(before["outbox"])
    after = everything_of(app, doomed)
    assert {name: r for name, r in after.items() if r} == {}
    assert rows(app, t.messages, t.messages.c.id.in_([first_msg, reply_msg])) == []
    assert rows(app, t.reactions, t.reactions.c.by_addr == "cust@example.org") == []
    # The other ticket, with the file both sent, is untouched.
    assert everything_of(app, kept) == kept_before
    assert shared.exists() and not own.exists()
    assert list((files / ".aside").iterdir()) == []   # the shared file was set aside and put back
    for raw_id, key in zip(raw_ids, dedupe_keys, strict=True):
        [tomb] = rows(app, t.raw_mail, t.raw_mail.c.id == raw_id)
        assert_tombstone(tomb, f"`ticketd tickets delete {doomed}`")
        assert tomb["dedupe_key"] == key

    shown = run_cli(config, "tickets", "show", str(doomed))
    assert shown.returncode == 1 and f"no ticket {doomed}" in shown.stderr
    assert [x["id"] for x in json.loads(cli_ok(config, "tickets", "list", "--json"))] == [kept]
    assert json.loads(cli_ok(config, "tickets", "show", str(kept), "--json"))["requester"] == "other@example.org"
    again = run_cli(config, "tickets", "delete", str(doomed), "--yes")
    assert again.returncode == 1 and f"no ticket {doomed}" in again.stderr


def test_delete_says_what_it_erased_in_words_and_logs_it(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url)
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<w1@client.example.org>"))
    done = run_cli(tmp_path / "ticketd.yaml", "tickets", "delete", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ticket [#1] erased: tickets 1, messages 1,")
    [logged] = [line for line in done.stderr.splitlines() if "ticketd.erase" in line]
    assert "INFO" in logged and "ticket 1 erased by `ticketd tickets delete 1`: tickets 1, messages 1" in logged


def test_an_unknown_ticket_is_a_clear_error(tmp_path, make_app, sqlite_url):
    make_app(sqlite_url)
    for args in (("--yes",), ()):
        done = run_cli(tmp_path / "ticketd.yaml", "tickets", "delete", "99", *args)
        assert done.returncode == 1 and "Error: no ticket 99" in done.stderr and "Traceback" not in done.stderr


def test_without_yes_it_shows_the_counts_and_asks_and_without_a_terminal_it_refuses(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<c1@client.example.org>"))

    refused = run_cli_without_terminal(config, "tickets", "delete", "1")
    assert refused.returncode == 1
    assert "would erase ticket [#1]: tickets 1, messages 1," in refused.stdout
    assert "not erased: no terminal to confirm on; run again with --yes" in refused.stderr
    refused_json = run_cli_without_terminal(config, "forget", "cust@example.org", "--json")
    assert refused_json.returncode == 1 and refused_json.stdout == ""   # stdout stays for JSON
    assert "would erase cust@example.org: tickets 1," in refused_json.stderr

    declined = run_cli_at_a_terminal(config, "n", "tickets", "delete", "1")
    assert declined.returncode == 1 and "Erase ticket [#1]? This cannot be undone" in declined.stdout
    assert everything_of(app, 1)["tickets"] and rows(app, t.raw_mail)[0]["state"] == "done"

    confirmed = run_cli_at_a_terminal(config, "y", "tickets", "delete", "1")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "ticket [#1] erased" in confirmed.stdout
    assert not everything_of(app, 1)["tickets"]


# ---------------------------------------------------------------- after the erasure


def test_a_redelivery_of_an_erased_mail_stays_a_duplicate(tmp_path, make_app, db_url):
    app = make_app(db_url)
    raw = mail_bytes("cust@example.org", "Printer on fire", "<r1@client.example.org>",
                     files=(("photo.jpg", OWN),))
    deliver(app, raw)
    [stored] = rows(app, t.raw_mail)
    erase_ticket(app.engine, app.settings.attachments_dir, stored["ticket_id"], "a test")

    deliver(app, raw)              # an SMTP retry of the very same bytes
    key, message_id = dedupe_key(raw)
    again = store_raw(app.engine, raw, source="imap", dedupe_key=key, message_id=message_id,
                      mailbox="imap.example.org/support/INBOX")   # an IMAP refetch
    assert (again.raw_id, again.duplicate, again.derived) == (stored["id"], True, False)
    drain(app)
    [tomb] = rows(app, t.raw_mail)
    assert_tombstone(tomb, "a test")
    assert rows(app, t.tickets) == [] and rows(app, t.attachments) == []
    assert not attachment_path(app.settings.attachments_dir, hashlib.sha256(OWN).hexdigest()).exists()


@pytest.mark.parametrize("preparer", ["inline", "process"])
def test_a_file_erased_while_a_mail_with_it_is_prepared_is_written_again_after_its_commit(
        tmp_path, make_app, db_url, preparer):
    """The file was on disk when the new mail was prepared, so preparing did not write it; the erasure
    asked before that mail committed and removed it. Processing checks its files after the commit."""
    app = make_app(db_url)
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<f1@client.example.org>",
                            files=(("manual.pdf", SHARED),)))
    doomed = ticket_of(app, "f1@client.example.org")
    second = mail_bytes("other@example.org", "Scanner jammed", "<f2@client.example.org>",
                        files=(("manual.pdf", SHARED),))
    key, message_id = dedupe_key(second)
    stored = store_raw(app.engine, second, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_from="other@example.org", envelope_to=["support@example.com"])
    pool = ProcessPreparer(app.settings, app.signer, 1) if preparer == "process" else InlinePreparer(
        app.settings, app.signer)
    try:
        prepared = pool.submit(load_raw(app.engine, [stored.raw_id])).result()
    finally:
        pool.close()
    file = attachment_path(app.settings.attachments_dir, hashlib.sha256(SHARED).hexdigest())

    erased = erase_ticket(app.engine, app.settings.attachments_dir, doomed, "a test")
    assert erased is not None and erased.files_removed == 1 and not file.exists()   # the window
    [outcome] = write_batch(app, prepared)

    assert outcome.quarantined is None and outcome.ticket_id != doomed
    assert file.read_bytes() == SHARED
    [row] = rows(app, t.attachments)
    assert row["sha256"] == hashlib.sha256(SHARED).hexdigest()
    assert [p.name for p in file.parent.iterdir()] == [file.name]
    assert list((app.settings.attachments_dir / ".aside").iterdir()) == []   # nothing set aside is left behind


def test_files_an_erasure_killed_midway_left_set_aside_are_put_back_or_removed(tmp_path, make_app, db_url):
    app = make_app(db_url)
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<k1@client.example.org>",
                            files=(("manual.pdf", SHARED), ("photo.jpg", OWN))))
    root = app.settings.attachments_dir
    shared, own = (hashlib.sha256(data).hexdigest() for data in (SHARED, OWN))
    with app.engine.begin() as conn:   # the erasure's transaction took the photo's row; the manual's stays
        conn.execute(t.attachments.delete().where(t.attachments.c.sha256 == own))
    # The erasing process sets both files aside and is killed before it decides.
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from pathlib import Path; "
                               "from ticketd.store.files import set_aside; "
                               "[set_aside(Path(sys.argv[1]), sha) for sha in sys.argv[2:]]; "
                               "os.kill(os.getpid(), signal.SIGKILL)", str(root), shared, own],
        cwd=Path(__file__).parent.parent, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not attachment_path(root, shared).exists() and not attachment_path(root, own).exists()
    alive = root / ".aside" / f"{'0' * 64}-{os.getpid()}"   # a running erasure's: not ours to settle
    alive.write_bytes(b"in flight")

    assert settle_interrupted_erasures(app.engine, root) == 2

    assert attachment_path(root, shared).read_bytes() == SHARED    # a row names it: back in its place
    assert not attachment_path(root, own).exists()                  # nothing names it: gone
    assert sorted(p.name for p in (root / ".aside").iterdir()) == [alive.name]
    assert settle_interrupted_erasures(app.engine, root) == 0


def test_a_reply_to_an_erased_ticket_by_reply_address_references_or_tag_opens_a_new_ticket(
        tmp_path, make_app, db_url):
    app = make_app(db_url)
    deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<t1@client.example.org>"))
    erased = ticket_of(app, "t1@client.example.org")
    [ack] = outbox_rows(app)
    sent = email.message_from_bytes(bytes(ack["raw"]))
    reply_to = parseaddr(sent["Reply-To"])[1]
    assert reply_to.startswith("support+") and f"[#{erased}]" in sent["Subject"]
    erase_ticket(app.engine, app.settings.attachments_dir, erased, "a test")

    deliver(app,
            mail_bytes("cust@example.org", "Re: the printer", "<n1@client.example.org>", "By reply address.",
                       to=reply_to),
            mail_bytes("cust@example.org", "Re: the printer", "<n2@client.example.org>", "By references.",
                       In_Reply_To=sent["Message-ID"],
                       References=f"<t1@client.example.org> {sent['Message-ID']}"),
            mail_bytes("cust@example.org", f"Re: [#{erased}] Printer on fire", "<n3@client.example.org>",
                       "By the subject tag."))

    assert rows(app, t.raw_mail, t.raw_mail.c.state != "done") == [rows(app, t.raw_mail)[0]]  # only the tombstone
    opened = [ticket_of(app, f"n{n}@client.example.org") for n in (1, 2, 3)]
    assert len(set(opened)) == 3 and erased not in opened
    for ticket_id in opened:
        [message] = rows(app, t.messages, t.messages.c.ticket_id == ticket_id)
        assert message["matched_by"] == "new"
        assert rows(app, t.tickets, t.tickets.c.id == ticket_id)[0]["status"] == "new"


@pytest.mark.parametrize("smarthost", ["accepts", "refuses"])
def test_a_delivery_that_claimed_a_row_before_its_ticket_was_erased_finishes_cleanly(
        tmp_path, make_app, db_url, smarthost):
    from outbound.delivery import deliver as deliver_row

    sink = Sink(free_port()).start()
    try:
        app = make_app(db_url, outbound_port=sink.port)
        deliver(app, mail_bytes("cust@example.org", "Printer on fire", "<d1@client.example.org>"))
        [row] = outbox_rows(app)
        sink.data_delay = 1.0          # the row is claimed, and the smarthost is slow to answer
        sink.reject = smarthost == "refuses"
        outcome: list = []
        errors: list = []

        def send() -> None:
            try:
                outcome.append(deliver_row(app, row["id"]))
            except Exception as exc:   # what a worker thread would die of
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: outbox_rows(app)[0]["state"] == "sending")
        erased = erase_ticket(app.engine, app.settings.attachments_dir, row["ticket_id"], "a test")
        assert erased is not None and erased.outbox == 1
        sender.join(30)
        assert not sender.is_alive() and errors == []
        # A 250 is what became of the mail; a 550 is recorded nowhere, the row being gone (None).
        assert outcome == ["sent" if smarthost == "accepts" else None]
        # Nothing recorded or queued for the vanished row: no event, no notice of the failure.
        assert outbox_rows(app) == [] and rows(app, t.events) == [] and rows(app, t.tickets) == []
        assert sink.attempts == 1
    finally:
        sink.stop()


# ---------------------------------------------------------------- forget


def too_deep(sender: str) -> bytes:
    """A mail From `sender` nested past the MIME depth limit: processing quarantines it."""
    deep = b"Content-Type: text/plain\r\n\r\nmy account number is 12345\r\n"
    for depth in range(25):   # past max_mime_depth (20): quarantined
        deep = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (depth, depth) + deep
                + b"\r\n--b%d--\r\n" % depth)
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: deep\r\nMessage-ID: <deep@client.example.org>\r\n"
            .encode() + deep)


def _every_value(app) -> list[tuple[str, str, str]]:
    """Every value in every table, as (table, column, text), bytes read as Latin-1, lower case."""
    found = []
    for table in t.metadata.sorted_tables:
        for row in rows(app, table):
            for column, value in row.items():
                if isinstance(value, (bytes, memoryview)):
                    value = bytes(value).decode("latin-1")
                found.append((table.name, column, str(value).lower()))
    return found


def test_forget_erases_a_person_everywhere_and_leaves_the_others_readable(tmp_path, make_app, db_url):
    app = make_app(db_url)
    config = tmp_path / "ticketd.yaml"
    deliver(app,
            mail_bytes("x@example.org", "My printer", "<x1@client.example.org>", files=(("x.jpg", OWN),)),
            mail_bytes("other@example.org", "Scanner jammed", "<o1@client.example.org>",
                       cc="X Person <X@Example.org>, colleague@example.org", files=(("manual.pdf", SHARED),)),
            mail_bytes("x@example.org", "Re: Scanner jammed", "<x2@client.example.org>", "Call me on 555-1234.",
                       In_Reply_To="<o1@client.example.org>", files=(("x-notes.txt", b"x's own notes"),)))
    mine, theirs = ticket_of(app, "x1@client.example.org"), ticket_of(app, "o1@client.example.org")
    assert ticket_of(app, "x2@client.example.org") == theirs
    key, message_id = dedupe_key(too_deep("X@example.org"))
    store_raw(app.engine, too_deep("X@example.org"), source="smtp", dedupe_key=key, message_id=message_id)
    drain(app)
    [quarantined] = rows(app, t.raw_mail, t.raw_mail.c.state == "quarantined")
    cli_ok(config, "quarantine", "dismiss", str(quarantined["id"]), "--reason", "junk from x@example.org")
    other_msg, x_msg = message_ids_of(app, theirs)
    with app.engine.begin() as conn:
        add_reaction(conn, other_msg, "dislike", "x@example.org", utcnow())
        insert_outbox_row(conn, ticket_id=theirs, message_row_id=other_msg, template="requester/agent_reply",
                          recipient="x@example.org", message_id="out-1@example.com", automatic=False,
                          raw=b"To: x@example.org\r\n\r\nhi\r\n", now=utcnow())
    x_file = attachment_path(app.settings.attachments_dir, rows(app, t.attachments,
                                                                t.attachments.c.message_id == x_msg)[0]["sha256"])
    assert x_file.exists()
    assert any("x@example.org" in v for _, _, v in _every_value(app))

    refused = run_cli(config, "forget", "alice@example.com", "--yes")
    assert refused.returncode == 1 and "alice@example.com is an agent in" in refused.stderr
    assert "remove them from it first" in refused.stderr

    # The domain's final dot, as mail may spell it and as ticketd takes it off (ingest.headers.mailbox).
    done = json.loads(cli_ok(config, "forget", "X@Example.ORG.", "--yes", "--json"))

    assert done["address"] == "x@example.org" and done["tickets_erased"] == [mine]
    counts = done["erased"]
    assert {k: counts[k] for k in ("tickets", "messages", "messages_blanked", "reactions", "files_removed")} == {
        "tickets": 1, "messages": 1, "messages_blanked": 1, "reactions": 1, "files_removed": 2}
    # Their ticket's mail, their reply, their quarantined mail, and the other customer's that named them in Cc.
    assert counts["raw_mail"] == 4
    assert counts["outbox"] == 2         # the acknowledgement of their ticket, the mail to them on the other
    assert everything_of(app, mine)["tickets"] == []
    # Not one value anywhere holds their address any more.
    assert [(table, column) for table, column, v in _every_value(app) if "x@example.org" in v] == []

    [blanked] = rows(app, t.messages, t.messages.c.id == x_msg)
    assert (blanked["text"], blanked["full_text"], blanked["html"], blanked["subject"]) == (
        "[erased]", "[erased]", None, None)
    assert (blanked["from_addr"], blanked["from_name"], blanked["ticket_id"]) == (None, None, theirs)
    assert rows(app, t.attachments, t.attachments.c.message_id == x_msg) == [] and not x_file.exists()
    assert_tombstone(rows(app, t.raw_mail, t.raw_mail.c.id == blanked["raw_mail_id"])[0], "`ticketd forget`")
    [dismissed] = rows(app, t.raw_mail, t.raw_mail.c.id == quarantined["id"])
    assert_tombstone(dismissed, "`ticketd forget`")
    assert (dismissed["dismissed_at"], dismissed["dismissed_by"], dismissed["dismiss_reason"]) == (None, None, None)
    assert json.loads(cli_ok(config, "quarantine", "list", "--json")) == []
    [other] = rows(app, t.messages, t.messages.c.id == other_msg)
    assert json.loads(other["cc_addrs"]) == ["colleague@example.org"] and other["text"] == "Help, please."
    assert [p["email"] for p in rows(app, t.participants, t.participants.c.ticket_id == theirs)] == [
        "other@example.org", "colleague@example.org"]

    # The other customer's ticket still reads, in text and JSON.
    shown = json.loads(cli_ok(config, "tickets", "show", str(theirs), "--json"))
    assert shown["followers"] == ["colleague@example.org"]
    assert [(m["from"], m["text"]) for m in shown["messages"] if m["direction"] == "in"] == [
        ("other@example.org", "Help, please."), (None, "[erased]")]
    assert "[erased]" in cli_ok(config, "tickets", "show", str(theirs))

    again = json.loads(cli_ok(config, "forget", "x@example.org", "--yes", "--json"))
    assert again["tickets_erased"] == [] and set(again["erased"].values()) == {0}


def test_forget_takes_a_former_agent_off_the_tickets_they_worked(tmp_path, make_app, db_url):
    app = make_app(db_url)
    config = tmp_path / "ticketd.yaml"
    gone = "gone@example.com"   # an agent once, no longer in rules.yaml
    deliver(app, mail_bytes("cust@example.org", "Printer", "<p1@client.example.org>"))
    ticket_id = ticket_of(app, "p1@client.example.org")
    with app.engine.begin() as conn:
        conn.execute(t.tickets.update().where(t.tickets.c.id == ticket_id).values(
            status="closed", assignee="Gone@example.com", dev_engineer=gone))
        conn.execute(t.rr_cursor.insert().values(group_name="support", last_agent=gone, updated_at=utcnow()))
        conn.execute(t.agent_absences.insert().values(agent=gone, since=utcnow(), until=None))   # their #away
    assert any(gone in v for _, _, v in _every_value(app))

    done = json.loads(cli_ok(config, "forget", gone, "--yes", "--json"))

    assert done["tickets_erased"] == [] and done["erased"]["addresses_removed"] == 4
    assert [(table, column) for table, column, v in _every_value(app) if gone in v] == []
    [ticket] = rows(app, t.tickets)
    assert (ticket["id"], ticket["assignee"], ticket["requester"]) == (ticket_id, None, "cust@example.org")


def test_forget_refuses_an_address_that_is_not_one_or_is_our_own(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    assert run_cli(config, "forget", "nobody", "--yes").returncode == 2
    # Taken as written they match no stored address: "forgotten", exit 0, and nothing erased.
    deliver(app, mail_bytes("ann@example.org", "Printer", "<ann1@client.example.org>"))
    ticket_id = ticket_of(app, "ann1@client.example.org")
    for written in ("Ann <ann@example.org>", "ann@example.org,", "mailto:ann@example.org", "<ann@example.org>"):
        refused = run_cli(config, "forget", written, "--yes")
        assert refused.returncode == 2 and "forgotten" not in refused.stdout, (written, refused.stdout)
        assert (f"{written!r} is not an email address (local@domain); to forget ann@example.org, give it alone: "
                "`ticketd forget ann@example.org`") in refused.stderr
    assert rows(app, t.tickets, t.tickets.c.id == ticket_id) != []
    two = run_cli(config, "forget", "ann@example.org, bob@example.org", "--yes")   # which one is not guessed
    assert two.returncode == 2 and "is not an email address (local@domain)" in two.stderr
    assert "give it alone" not in two.stderr
    ours = run_cli(config, "forget", "Support@example.com", "--yes")
    assert ours.returncode == 1 and "one of ticketd's own addresses" in ours.stderr
