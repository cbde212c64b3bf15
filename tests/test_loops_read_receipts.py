"""Read receipts (RFC 8098 message disposition notifications): kept on the ticket of the mail they are
about, never answered, and they change nothing: a receipt of the closing mail does not reopen the ticket."""

from __future__ import annotations

import pytest

from tests.desk import build_mail, open_desk

CUSTOMER, AGENT = "ann@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _closed(desk) -> int:
    desk.send(build_mail(CUSTOMER, "Where is my invoice copy?\n", subject="Copy please"))
    tid = desk.ticket()["id"]
    desk.send(build_mail(AGENT, "#close\n\nAnswered in your other ticket.\n", to=desk.agent_address(tid, AGENT),
                         subject=f"Re: [#{tid}] Copy please"))
    assert desk.ticket(tid)["status"] == "closed"
    return tid


def _receipt(subject: str, original_id: str, *, threaded: bool, headers_part: bool) -> bytes:
    """A receipt as Thunderbird (threaded, headers returned) or Outlook (neither) writes one."""
    threading = f"In-Reply-To: {original_id}\r\nReferences: {original_id}\r\n" if threaded else ""
    returned = (f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Support <support@example.com>\r\n"
                f"Message-ID: {original_id}\r\n\r\n") if headers_part else ""
    return (f"From: Ann <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <mdn-{abs(hash((subject, threaded, headers_part)))}@client.example.org>\r\n"
            f"{threading}MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n"
            "--R\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n\r\n"
            "--R\r\nContent-Type: message/disposition-notification\r\n\r\n"
            "Reporting-UA: client.example.org; Mail Client\r\n"
            f"Final-Recipient: rfc822;{CUSTOMER}\r\nOriginal-Message-ID: {original_id}\r\n"
            "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
            f"{returned}--R--\r\n").encode()


@pytest.mark.parametrize(("subject", "threaded", "headers_part"), [
    ("Return Receipt (displayed) - [#{tid}] Copy please", True, True),
    ("Read: [#{tid}] Copy please", False, False),
    # A receipt whose subject lost the tag and that names the mail only in its report (RFC 8098 3.2.5).
    ("Read: Copy please", False, False),
    ("Disposition notification", False, True),
], ids=["thunderbird", "outlook", "no tag", "headers only"])
def test_a_read_receipt_of_the_closing_mail_is_kept_and_changes_nothing(desk, subject, threaded, headers_part):
    tid = _closed(desk)
    closing = desk.last(CUSTOMER)
    sent = len(desk.sink.messages)
    desk.send_raw(_receipt(subject.format(tid=tid), str(closing["Message-ID"]), threaded=threaded,
                           headers_part=headers_part), mail_from=CUSTOMER)
    assert desk.ticket()["id"] == tid                      # no ticket of its own
    receipt = desk.messages(tid)[-1]
    assert receipt["message_id"].startswith("mdn-") and receipt["auto_generated"] is True
    assert desk.ticket(tid)["status"] == "closed"
    assert desk.events(tid, "reopened") == []
    assert len(desk.sink.messages) == sent                 # nobody answered, nobody told
