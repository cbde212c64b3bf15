"""Delivery reports (RFC 3464): parsed from real bounces, linked to our outbox mail, address marked bounced."""

from __future__ import annotations

import itertools
import smtplib

import pytest
from sqlalchemy import select

from ingest.smtp import Receiver
from outbound.dsn import read_report
from outbound.outbox import queue_notices
from tests.conftest import CORPUS
from tests.desk import body_text, build_mail, open_desk
from tests.sink import customer_mail, delivery_report, outbox_rows, submit, ticket_events
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice
from ticketd.pipeline import drain
from ticketd.store.tables import events, messages, participants


@pytest.mark.parametrize("path,recipient,status,message_id", [
    ("zammad/mail033-undelivered-mail-returned-to-sender.box", "not_existing@znuny.com", "5.1.1",
     "20150830145601.30.608881@edenhofer.zammad.com"),
    ("bestpractical-rt/multipart-report", "jesmund@mailbox.other.example.com", "5.1.1",
     "200308221615.h7mgfgac020135@mx12.other.example.com"),
    ("zammad/mail092.box", "receiver@example.org", "5.2.2", None),
])
def test_real_bounces_are_read(path, recipient, status, message_id):
    report = read_report((CORPUS / path).read_bytes())
    assert report is not None
    assert report.failed_recipients == [recipient]
    assert report.status == status
    assert report.original_message_ids == ([message_id] if message_id else [])


def test_an_ordinary_mail_is_no_report():
    assert read_report(customer_mail().as_bytes()) is None


def test_a_bounce_of_our_ack_lands_on_its_ticket_and_marks_the_address(make_app, db_url):
    app = make_app(db_url, rules="agents: []\nroutes: []\n")
    receiver = Receiver(app)
    receiver.start()
    try:
        submit(app, customer_mail(sender="gone@example.org", subject="Printer on fire"))
        drain(app)
        [ack] = outbox_rows(app)
        # A second, unrelated ticket: the bounce must not go there.
        submit(app, customer_mail(sender="other@example.org", subject="Printer on fire"))
        drain(app)
        with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
            client.sendmail("", ["support@example.com"], delivery_report(ack["message_id"], "gone@example.org"))
        assert drain(app) == 1
    finally:
        receiver.stop()
    with app.engine.connect() as conn:
        stored = conn.execute(select(messages).where(messages.c.message_id == "bounce-1@mx.example.org")
                              ).mappings().one()
        bounced = conn.execute(select(participants.c.bounced_at).where(
            participants.c.email == "gone@example.org")).scalar_one()
    assert stored["ticket_id"] == ack["ticket_id"]
    assert stored["matched_by"] == "bounce"
    assert stored["auto_generated"] is True
    assert bounced is not None
    [event] = ticket_events(app, ack["ticket_id"], "bounced")
    assert event["to_value"] == "gone@example.org" and "5.1.1" in event["reason"]
    assert len(outbox_rows(app)) == 2      # the bounce itself is never answered
    # and nothing automatic goes to the bounced address any more
    with app.engine.begin() as conn:
        assert queue_notices(conn, app, [Notice("requester/status_changed", "gone@example.org", ack["ticket_id"],
                                                context={"status": "open"})], utcnow()) == []


# -- A report proves it is about our mail only by naming a Message-ID we signed (PRODUCT.md, Threading).

VICTIM, OTHER, EVIL = "victim@example.org", "other@example.org", "mallory@evil.example.net"
_report_ids = itertools.count(1)


def _report(sender: str, final: str, *, original: str | None = None, headers_id: str | None = None,
            message_id: str | None = None, in_reply_to: str | None = None,
            international: bool = False) -> tuple[str, bytes]:
    """A multipart/report (RFC 3464) saying `final` failed; returns its Message-ID and bytes.

    The original is named as asked: `headers_id` in a text/rfc822-headers
    part, `message_id` in a returned message/rfc822, `in_reply_to` in the
    report's own In-Reply-To (as some reporters do). None of them: no
    original at all. `international`: the RFC 6533 form, a
    message/global-delivery-status with "utf-8" addresses in raw UTF-8 and
    the original's header in message/global-headers.
    """
    own_id = f"report-{next(_report_ids)}@mx.example.net"
    status_type, address_type, headers_type = (
        ("message/global-delivery-status", "utf-8", "message/global-headers") if international
        else ("message/delivery-status", "rfc822", "text/rfc822-headers"))
    parts = [
        "Content-Type: text/plain\n\nYour message could not be delivered.\n",
        f"Content-Type: {status_type}\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: {address_type}; {final}\n"
        + (f"Original-Recipient: {address_type};{original}\n" if original else "")
        + "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n",
    ]
    if headers_id:
        parts.append(f"Content-Type: {headers_type}\n\nFrom: support@example.com\nTo: {final}\n"
                     f"Subject: [#1] Printer on fire\nMessage-ID: <{headers_id}>\n")
    if message_id:
        parts.append(f"Content-Type: message/rfc822\n\nFrom: support@example.com\nTo: {final}\n"
                     f"Subject: [#1] Printer on fire\nMessage-ID: <{message_id}>\n\nWe received your mail.\n")
    raw = (f"From: {sender}\nTo: support@example.com\nSubject: Undelivered Mail Returned to Sender\n"
           f"Message-ID: <{own_id}>\n" + (f"In-Reply-To: <{in_reply_to}>\n" if in_reply_to else "")
           + "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
           + "".join(f"--B\n{part}" for part in parts) + "--B--\n")
    return own_id, raw.replace("\n", "\r\n").encode()


@pytest.mark.parametrize("written", ["müller@example.de", "m\\x{FC}ller@example.de", "M\\x{dc}LLER@example.de"])
def test_an_international_report_names_the_utf8_recipient(written):
    # RFC 6533: raw UTF-8 in a message/global-delivery-status, or \x{HHHH} escapes.
    _, raw = _report("MAILER-DAEMON@mx.example.net", written, headers_id="ack-1@example.com", international=True)
    report = read_report(raw)
    assert report is not None
    assert report.failed_recipients == ["müller@example.de"]
    assert (report.status, report.original_message_ids) == ("5.1.1", ["ack-1@example.com"])


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _open_ticket(desk, customer: str) -> tuple[int, str]:
    """A customer's new ticket; its id and the signed Message-ID of the acknowledgement we sent them."""
    desk.send(build_mail(customer, "The printer is on fire.\n"))
    return desk.ticket()["id"], str(desk.last(customer)["Message-ID"]).strip("<>")


def _assert_changes_nothing(desk, report_id: str, victim_ticket: int, evil_mails: int = 0,
                            lands: tuple[int, str] | None = None) -> None:
    """The report is robot mail on a ticket of its own (or where `lands`: ticket, matched_by): the
    victim's ticket not joined, nobody bounced, nothing answered."""
    report = desk.message(report_id)
    if lands is None:
        assert report["ticket_id"] != victim_ticket and report["matched_by"] == "new"
    else:
        assert (report["ticket_id"], report["matched_by"]) == lands
    assert report["auto_generated"] is True
    assert [m["from_addr"] for m in desk.messages(victim_ticket)] == [VICTIM]
    assert [p["bounced_at"] for p in desk.rows(participants) if p["bounced_at"]] == []
    assert [e for e in desk.rows(events) if e["kind"] == "bounced"] == []
    assert len(desk.inbox(EVIL)) == evil_mails
    with desk.app.engine.begin() as conn:   # the victim still gets the desk's mail
        assert queue_notices(conn, desk.app, [Notice("requester/status_changed", VICTIM, victim_ticket,
                                                     context={"status": "open"})], utcnow()) != []


def test_a_report_naming_only_an_address_joins_no_ticket_and_marks_nothing(desk):
    victim_ticket, _ = _open_ticket(desk, VICTIM)
    report_id, raw = _report(EVIL, VICTIM)
    desk.send_raw(raw, mail_from=EVIL)
    _assert_changes_nothing(desk, report_id, victim_ticket)


@pytest.mark.parametrize("forgery", ["tampered signature", "unsigned on our domain", "ours, to someone else"])
def test_a_report_quoting_a_message_id_that_is_not_proof_changes_nothing(desk, forgery):
    victim_ticket, ack_id = _open_ticket(desk, VICTIM)
    evil_ticket, evil_ack_id = _open_ticket(desk, EVIL)
    local, domain = ack_id.rsplit("@", 1)
    payload, signature = local.rsplit(".", 1)
    quoted = {
        "tampered signature": f"{payload}.{signature[:4]}{'0' * 16}@{domain}",
        "unsigned on our domain": f"t{victim_ticket}.m0123456789abcdef@{domain}",
        # signed, but the mail went to mallory, who is not the recipient the report names
        "ours, to someone else": evil_ack_id,
    }[forgery]
    report_id, raw = _report(EVIL, VICTIM, headers_id=quoted)
    desk.send_raw(raw, mail_from=EVIL)
    # A report of her own mail is about her own ticket, and kept there as a robot's mail.
    lands = (evil_ticket, "delivery_report") if forgery == "ours, to someone else" else None
    _assert_changes_nothing(desk, report_id, victim_ticket, evil_mails=1, lands=lands)   # her acknowledgement


def test_an_international_report_of_our_mail_to_a_utf8_customer_marks_them_bounced(desk):
    customer = "müller@example.de"
    ticket_id, ack_id = _open_ticket(desk, customer)
    report_id, raw = _report("MAILER-DAEMON@mx.example.net", customer, headers_id=ack_id, international=True)
    desk.send_raw(raw)
    assert (desk.message(report_id)["ticket_id"], desk.message(report_id)["matched_by"]) == (ticket_id, "bounce")
    [row] = desk.rows(participants, ticket_id=ticket_id, email=customer)
    assert row["bounced_at"] is not None


@pytest.mark.parametrize("action,status", [("delayed", "4.4.7"), ("delivered", "2.0.0"), ("relayed", "2.0.0")])
def test_a_report_of_our_mail_that_is_no_failure_is_kept_on_its_ticket_and_marks_nothing(desk, action, status):
    """A "delayed" notice (Exchange, Gmail send them after hours of retrying) named our mail only in its
    returned headers and opened a ticket of its own, which round robin gave to an agent."""
    ticket_id, ack_id = _open_ticket(desk, VICTIM)
    tickets_before = desk.ticket()["id"]
    report_id, raw = _report("MAILER-DAEMON@mx.example.net", VICTIM, headers_id=ack_id)
    raw = raw.replace(b"Action: failed\r\nStatus: 5.1.1", f"Action: {action}\r\nStatus: {status}".encode())
    desk.send_raw(raw)
    stored = desk.message(report_id)
    assert (stored["ticket_id"], stored["matched_by"], stored["auto_generated"]) == (
        ticket_id, "delivery_report", True)
    assert desk.ticket()["id"] == tickets_before       # no ticket of its own
    assert [p["bounced_at"] for p in desk.rows(participants) if p["bounced_at"]] == []
    assert desk.events(ticket_id, "bounced") == [] and desk.events(ticket_id, "automatic_mail") != []
    assert len(desk.inbox(VICTIM)) == 1                # the acknowledgement only; nothing answers a report


@pytest.mark.parametrize("shape", ["returned headers", "returned message", "in-reply-to only", "forwarded"])
def test_a_report_quoting_our_signed_message_id_links_and_marks_bounced(desk, shape):
    victim_ticket, ack_id = _open_ticket(desk, VICTIM)
    other_ticket, _ = _open_ticket(desk, OTHER)
    report_id, raw = {
        "returned headers": lambda: _report("MAILER-DAEMON@mx.example.net", VICTIM, headers_id=ack_id),
        "returned message": lambda: _report("MAILER-DAEMON@mx.example.net", VICTIM, message_id=ack_id),
        "in-reply-to only": lambda: _report("MAILER-DAEMON@mx.example.net", VICTIM, in_reply_to=ack_id),
        # an alias rewrote the address: RFC 3464 keeps the one we sent to as Original-Recipient
        "forwarded": lambda: _report("MAILER-DAEMON@mx.example.net", "v.old@mail.example.org",
                                     original=VICTIM, headers_id=ack_id),
    }[shape]()
    desk.send_raw(raw)
    report = desk.message(report_id)
    assert (report["ticket_id"], report["matched_by"]) == (victim_ticket, "bounce")
    [victim] = desk.rows(participants, ticket_id=victim_ticket, email=VICTIM)
    assert victim["bounced_at"] is not None
    [event] = desk.events(victim_ticket, "bounced")
    assert event["to_value"] == VICTIM and ack_id in event["reason"]
    assert [p["bounced_at"] for p in desk.rows(participants, ticket_id=other_ticket)] == [None]
    assert desk.inbox("MAILER-DAEMON@mx.example.net") == []


def test_a_bounce_tells_the_assignee_and_stops_automatic_mail_not_the_agents_words(desk):
    """A bounce marks the address: automatic mail to it is suppressed with an event, never dropped without
    a trace; the assignee hears of it as of any failed mail; an agent's reply is still tried (a full mailbox
    empties); and the customer's own next mail clears the mark."""
    ticket_id, ack_id = _open_ticket(desk, VICTIM)
    assert desk.assign(ticket_id) == "alice@example.com"
    told_before = len(desk.inbox("alice@example.com"))
    desk.send_raw(_report("MAILER-DAEMON@mx.example.net", VICTIM, headers_id=ack_id)[1])
    [told] = desk.inbox("alice@example.com")[told_before:]
    assert f"[#{ticket_id}]" in str(told["Subject"])
    assert VICTIM in body_text(told) and "requester/ticket_opened" in body_text(told)

    def automatic() -> list[int]:
        with desk.app.engine.begin() as conn:
            return queue_notices(conn, desk.app, [Notice("requester/status_changed", VICTIM, ticket_id,
                                                         context={"status": "open"})], utcnow())

    assert automatic() == []
    [suppressed] = desk.events(ticket_id, "mail_suppressed")
    assert suppressed["to_value"] == VICTIM and "bounced" in suppressed["reason"]
    agent_address = desk.agent_address(ticket_id, "alice@example.com")
    delivered = len(desk.inbox(VICTIM))
    desk.send(build_mail("alice@example.com", "Try turning it off.\n", to=agent_address, subject="Re: x"))
    assert len(desk.inbox(VICTIM)) == delivered + 1 and "Try turning it off." in body_text(desk.last(VICTIM))
    assert len(desk.events(ticket_id, "mail_suppressed")) == 1

    desk.reply_to(desk.inbox(VICTIM)[-1], VICTIM, "My mailbox was full, sorry. Still burning.\n")
    [cleared] = desk.events(ticket_id, "bounce_cleared")
    assert cleared["to_value"] == VICTIM and "bounced at" in cleared["reason"]
    assert [p["bounced_at"] for p in desk.rows(participants, ticket_id=ticket_id, email=VICTIM)] == [None]
    assert automatic() != []

