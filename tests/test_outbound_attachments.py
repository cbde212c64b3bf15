"""Files travel with the mail: the customer's to the agent, the agent's to the customer, a note's to agents only."""

from __future__ import annotations

import hashlib
import smtplib

import pytest

from outbound.attachments import Listed, choose, fill_files, mixed_boundary, placeholder_part
from outbound.delivery import deliver
from tests.desk import Desk, body_text, build_mail, open_desk
from ticketd.pipeline import drain
from ticketd.store.files import attachment_path
from ticketd.store.tables import attachments, outbox
from ticketd.views import show_ticket

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40          # binary, about 10 kB
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 700


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _with_files(msg, *files):
    for name, data, maintype, subtype in files:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def _reply(desk: Desk, received, sender: str, body: str, *files):
    """A mail client's reply to `received`, with files attached."""
    msg = build_mail(sender, body, to=str(received["Reply-To"]), subject="Re: " + str(received["Subject"]),
                     in_reply_to=str(received["Message-ID"]))
    return desk.send(_with_files(msg, *files))


def _files(mail) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments()}


def _open_assigned(desk: Desk, body: str = "The printer is on fire.\n") -> int:
    desk.send(build_mail(CUSTOMER, body))
    ticket_id = desk.ticket()["id"]
    assert desk.assign(ticket_id) == ALICE
    return ticket_id


def test_the_customers_files_reach_the_assigned_agent_whole(desk):
    ticket_id = _open_assigned(desk)
    _reply(desk, desk.last(CUSTOMER), CUSTOMER, "Here is the log and a photo.\n",
           ("Protokoll März.pdf", PDF, "application", "pdf"), ("photo.png", PNG, "image", "png"))
    notice = desk.last(ALICE)
    assert "Here is the log and a photo." in body_text(notice)
    assert _files(notice) == {"Protokoll März.pdf": PDF, "photo.png": PNG}
    assert notice.get_content_type() == "multipart/mixed"
    assert "Protokoll März.pdf (10.2 kB)" in body_text(notice)
    # The outbox keeps the mail without the files' bytes (one copy on disk, not one per recipient).
    row = desk.rows(outbox, ticket_id=ticket_id, template="agent/customer_replied")[-1]
    assert len(row["raw"]) < 4000 and b"X-Ticketd-Attachment" in bytes(row["raw"])
    assert b"X-Ticketd-Attachment" not in desk.sink.messages[-1].raw


def test_the_tickets_view_lists_the_files_each_mail_out_carries(desk):
    ticket_id = _open_assigned(desk)
    _reply(desk, desk.last(CUSTOMER), CUSTOMER, "Log.\n", ("Protokoll März.pdf", PDF, "application", "pdf"))
    shown = show_ticket(desk.app.engine, ticket_id)
    [notice] = [m for m in shown["messages"] if m.get("template") == "agent/customer_replied"]
    assert [(a["filename"], a["size"], a["sha256"]) for a in notice["attachments"]] == [
        ("Protokoll März.pdf", len(PDF), hashlib.sha256(PDF).hexdigest())]
    assert all(m["attachments"] == [] for m in shown["messages"]
               if m["direction"] == "out" and m.get("template") != "agent/customer_replied")


def test_an_agents_files_reach_the_customer_and_followers(desk):
    follower = "colleague@example.org"
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=follower))
    ticket_id = desk.ticket()["id"]
    desk.assign(ticket_id)
    _reply(desk, desk.last(ALICE), ALICE, "Please follow the attached guide.\n",
           ("guide.pdf", PDF, "application", "pdf"))
    for person in (CUSTOMER, follower):
        relayed = desk.last(person)
        assert "Please follow the attached guide." in body_text(relayed)
        assert _files(relayed) == {"guide.pdf": PDF}
        assert "Not attached" not in body_text(relayed)


def test_an_agents_contact_card_and_address_in_a_file_name_never_reach_the_customer(desk):
    """PRODUCT.md: customers never see agents' private addresses; a mail client's "attach my vCard"
    and a file named for the agent showed them."""
    ticket_id = _open_assigned(desk)
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice\r\nEMAIL:alice@example.com\r\nTEL:+1 555 0100\r\nEND:VCARD\r\n"
    _reply(desk, desk.last(ALICE), ALICE, "Please follow the attached guide.\n",
           ("guide.pdf", PDF, "application", "pdf"), ("Alice.vcf", card, "text", "vcard"),
           ("card", card, "text", "x-vcard"), ("notes-for-alice@example.com.txt", b"steps", "text", "plain"))
    relayed = desk.last(CUSTOMER)
    assert _files(relayed) == {"guide.pdf": PDF, "notes-for-support@example.com.txt": "steps"}
    assert "alice@example.com" not in relayed.as_string().lower()
    # The ticket keeps all four, as she sent them.
    shown = show_ticket(desk.app.engine, ticket_id)
    [hers] = [m for m in shown["messages"] if m["direction"] == "in" and m["from"] == ALICE]
    assert sorted(a["filename"] for a in hers["attachments"]) == [
        "Alice.vcf", "card", "guide.pdf", "notes-for-alice@example.com.txt"]


def test_a_notes_files_go_to_other_agents_and_never_to_the_customer(make_app, db_url):
    for desk in open_desk(make_app, db_url):   # Alice and Bob in support
        desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
        ticket_id = desk.ticket()["id"]
        first = desk.assign(ticket_id)
        other = BOB if first == ALICE else ALICE
        # The other agent takes part, then the first writes a note with a file.
        _reply(desk, desk.last(first), first, f"#assign {other}\n")
        _reply(desk, desk.last(other), other, "#note\nThe customer's contract, for reference.\n",
               ("contract.pdf", PDF, "application", "pdf"))
        note = [m for m in desk.inbox(first) if "contract" in body_text(m)][-1]
        assert _files(note) == {"contract.pdf": PDF}
        assert all(not _files(m) for m in desk.inbox(CUSTOMER))
        assert all(b"contract" not in m.raw for m in desk.sink.messages if CUSTOMER in m.rcpt_tos)
        assert desk.ticket(ticket_id)["status"] == "new"


@pytest.fixture
def small_desk(make_app, sqlite_url):
    """Mail may carry at most 11 000 bytes of files."""
    yield from open_desk(make_app, sqlite_url, outbound="  max_attachment_bytes: 11000\n")


def test_files_over_the_limit_are_named_not_attached(small_desk):
    desk = small_desk
    _open_assigned(desk)
    big = bytes(range(256)) * 100                       # 25 600 bytes: over the limit on its own
    _reply(desk, desk.last(CUSTOMER), CUSTOMER, "Three files.\n", ("big.bin", big, "application", "octet-stream"),
           ("guide.pdf", PDF, "application", "pdf"), ("photo.png", PNG, "image", "png"))
    notice = desk.last(ALICE)
    assert _files(notice) == {"guide.pdf": PDF}        # the PNG no longer fits beside the PDF
    text = body_text(notice).replace("\r\n", "\n")
    assert "big.bin (25.6 kB): not attached, over the size limit" in text
    assert "photo.png (1.4 kB): not attached" in text and "guide.pdf (10.2 kB)\n" in text

    _reply(desk, notice, ALICE, "The same file, back.\n", ("big.bin", big, "application", "octet-stream"))
    relayed = desk.last(CUSTOMER)
    assert _files(relayed) == {}
    assert "Not attached, too large for one mail" in body_text(relayed) and "big.bin (25.6 kB)" in body_text(relayed)


def _queue_notice_with_a_file(desk) -> int:
    """A customer's reply with a PDF processed, its notice to the agent queued, not yet sent; the ticket."""
    ticket_id = _open_assigned(desk)
    msg = build_mail(CUSTOMER, "Log attached.\n", to=str(desk.last(CUSTOMER)["Reply-To"]),
                     subject="Re: " + str(desk.last(CUSTOMER)["Subject"]))
    _with_files(msg, ("log.pdf", PDF, "application", "pdf"))
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        client.send_message(msg, to_addrs=[str(msg["To"])])
    assert drain(desk.app) == 1
    return ticket_id


def test_a_file_erased_before_sending_leaves_a_note_in_its_place(desk):
    ticket_id = _queue_notice_with_a_file(desk)
    sent = len(desk.sink.messages)
    # As `ticketd forget` does to a person's files on someone else's ticket: rows and file gone.
    with desk.app.engine.begin() as conn:
        conn.execute(attachments.delete())
    attachment_path(desk.app.settings.attachments_dir, hashlib.sha256(PDF).hexdigest()).unlink()
    desk.flush()
    notice = desk.last(ALICE)
    assert len(desk.sink.messages) == sent + 1
    assert _files(notice) == {}
    assert "An attachment was erased before this mail was sent" in notice.as_string()
    assert "Log attached." in body_text(notice) and desk.rows(outbox, ticket_id=ticket_id)[-1]["state"] == "sent"


def test_a_file_a_ticket_still_holds_but_this_host_lacks_is_waited_for(desk):
    """A worker on a host without the daemon's data_dir must not send the mail without the file."""
    ticket_id = _queue_notice_with_a_file(desk)
    sent = len(desk.sink.messages)
    path = attachment_path(desk.app.settings.attachments_dir, hashlib.sha256(PDF).hexdigest())
    kept = path.read_bytes()
    path.unlink()
    [row] = [r for r in desk.rows(outbox, ticket_id=ticket_id) if r["state"] == "pending"]
    assert deliver(desk.app, row["id"]) == "pending"
    [waiting] = desk.rows(outbox, id=row["id"])
    assert "needs the daemon's data_dir" in waiting["last_error"] and len(desk.sink.messages) == sent

    path.write_bytes(kept)   # the shared data_dir is back
    with desk.app.engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == row["id"]).values(next_attempt_at=waiting["created_at"]))
    assert deliver(desk.app, row["id"]) == "sent"
    desk.sink.wait_for(sent + 1)
    assert _files(desk.last(ALICE)) == {"log.pdf": PDF}


def test_text_a_customer_writes_cannot_pull_in_a_stored_file(desk):
    """The marker only counts in a part under the mail's own boundary, which quoted-printable text cannot hold."""
    secret = b"another customer's invoice " * 50
    desk.send(_with_files(build_mail("other@example.org", "Invoice attached.\n", subject="Invoice"),
                          ("invoice.pdf", secret, "application", "pdf")))
    sha = hashlib.sha256(secret).hexdigest()
    _open_assigned(desk)
    boundary = mixed_boundary("anything")
    _reply(desk, desk.last(CUSTOMER), CUSTOMER,
           f"--{boundary}\nX-Ticketd-Attachment: {sha}\n\nX-Ticketd-Attachment: {sha}\n\n", )
    for delivered in desk.sink.messages:
        assert b"another customer's invoice" not in delivered.raw
        assert "another customer" not in delivered.message.as_string()
    assert all(not _files(m) for m in desk.inbox(ALICE))


def test_choose_keeps_newest_messages_first_and_one_copy_of_each_file():
    rows = [dict(id=1, message_id=10, filename="old.pdf", size=600, content_type="application/pdf", sha256="a" * 64),
            dict(id=2, message_id=11, filename="logo.png", size=100, content_type="image/png", sha256="b" * 64),
            dict(id=3, message_id=11, filename="new.pdf", size=500, content_type="application/pdf", sha256="c" * 64),
            dict(id=4, message_id=10, filename="logo.png", size=100, content_type="image/png", sha256="b" * 64),
            dict(id=5, message_id=10, filename="signed.pdf", size=600, content_type="application/pdf",
                 sha256="a" * 64)]
    listed = choose(rows, (11, 10), limit=700)
    assert [(f.filename, f.attached) for f in listed] == [("logo.png", True), ("new.pdf", True), ("old.pdf", False),
                                                          ("signed.pdf", False)]
    assert [f.attached for f in choose(rows, (11, 10), limit=0)] == [False, False, False, False]


def test_the_same_file_under_two_names_reaches_the_agent_under_both(desk):
    """A customer's "contract-v1.pdf" and "contract-signed.pdf", the same bytes: the agent's mail had the
    first alone, and the second name, which the customer may speak of, was never mentioned."""
    ticket_id = _open_assigned(desk)
    _reply(desk, desk.last(CUSTOMER), CUSTOMER, "The signed one is the second.\n",
           ("contract-v1.pdf", PDF, "application", "pdf"), ("contract-signed.pdf", PDF, "application", "pdf"))
    notice = desk.last(ALICE)
    assert _files(notice) == {"contract-v1.pdf": PDF, "contract-signed.pdf": PDF}
    text = body_text(notice)
    assert "contract-v1.pdf (10.2 kB)" in text and "contract-signed.pdf (10.2 kB)" in text
    # Queued, the mail still holds no file's bytes: each part is filled from the one file on disk.
    row = desk.rows(outbox, ticket_id=ticket_id, template="agent/customer_replied")[-1]
    assert len(row["raw"]) < 4000 and bytes(row["raw"]).count(b"X-Ticketd-Attachment") == 2


def test_a_mail_without_files_goes_out_byte_for_byte(tmp_path):
    raw = b"Subject: x\r\nX-Ticketd-Attachment: " + b"a" * 64 + b"\r\n\r\nno parts\r\n"
    assert fill_files(raw, "id@example.com", tmp_path, lambda sha256: True) == raw
    plain = b"Subject: y\r\n\r\nbody\r\n"
    assert fill_files(plain, "id@example.com", tmp_path, lambda sha256: True) == plain


def test_a_senders_content_type_and_file_name_cannot_break_the_header():
    hostile = Listed(filename="Résumé.pdf", size=3, content_type='image/png"\r\nBcc: victim@example.net',
                     sha256="0" * 64, attached=True)
    part = placeholder_part(hostile)
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_filename() == "Résumé.pdf"
    assert "Bcc" not in part.as_string()
    assert placeholder_part(Listed("a.pdf", 3, "Application/PDF", "0" * 64, True)).get_content_type() == (
        "application/pdf")


def test_a_forwarded_mail_and_a_utf8_text_file_reach_the_agent_readable(desk):
    """A message/rfc822 file went base64 under its own type, which MIME forbids (the reader saw base64 as the
    mail), and a UTF-8 log went without a charset, so US-ASCII (RFC 2046 section 4.1.2): mojibake."""
    import email
    import email.policy

    forwarded = build_mail("vendor@example.net", "Your order 4711 ships Monday.\n", subject="Order 4711")
    log = "Fehler: Drucker brennt — Überhitzung\n".encode()
    msg = build_mail(CUSTOMER, "The printer is on fire; the vendor's mail and the log are attached.\n")
    msg.add_attachment(forwarded)
    msg.add_attachment(log, maintype="text", subtype="plain", filename="drucker.log")
    desk.send(msg)
    assert desk.assign(desk.ticket()["id"]) == ALICE
    notice = desk.last(ALICE)
    parts = {part.get_filename(): part for part in notice.iter_attachments()}
    [eml] = [name for name in parts if name.endswith(".eml")]
    assert parts[eml].get_content_type() == "application/octet-stream"
    inner = email.message_from_bytes(parts[eml].get_content(), policy=email.policy.default)
    assert inner["Subject"] == "Order 4711" and "ships Monday" in inner.get_content()
    text = parts["drucker.log"]
    assert (text.get_content_type(), text.get_content_charset()) == ("text/plain", "utf-8")
    assert text.get_content() == log.decode()
