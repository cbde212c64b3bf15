"""Robot signals as mail systems spell them: a null return path written `<MAILER-DAEMON>`, and an
Auto-Submitted field with a comment (RFC 3834 section 5: CFWS around the keyword)."""

from __future__ import annotations

import pytest

from outbound.plain_bounce import read_plain_bounce
from ticketd.domain.loops import auto_generated_reason

CUSTOMER = "cust@example.org"


@pytest.mark.parametrize("path", ["<MAILER-DAEMON>", "<mailer-daemon>", "MAILER-DAEMON", " <> ", "<>"])
def test_a_null_return_path_in_any_spelling_is_a_robots(path):
    # sendmail and others write the null reverse-path (RFC 5321 section 4.5.5) so when they deliver a bounce.
    assert auto_generated_reason({}, path, CUSTOMER) == "null return path"


@pytest.mark.parametrize("path", ["<mailer-daemon@example.org>", "<cust@example.org>", "<daemon>"])
def test_a_return_path_naming_a_mailbox_is_no_null_path(path):
    assert auto_generated_reason({}, path, CUSTOMER) is None


def test_a_bounce_from_a_null_path_so_written_is_read_whatever_its_from_says():
    raw = (b"From: Bounces <bounces@mx.example.org>\r\nTo: support@example.com\r\nSubject: failure notice\r\n"
           b"\r\nSorry, we were unable to deliver your message to the following address.\r\n\r\n"
           b"<cust@example.org>:\r\n550 5.1.1 No such user\r\n\r\n"
           b"--- Below this line is a copy of the message.\r\n\r\nFrom: support@example.com\r\n"
           b"Message-ID: <t1.abc@example.com>\r\nSubject: [#1] Printer\r\n\r\nHello\r\n")
    report = read_plain_bounce(raw, "<MAILER-DAEMON>")
    assert report is not None and report.failed_recipients == [CUSTOMER]


@pytest.mark.parametrize(("value", "says"), [
    ("no (a person wrote this)", None),
    ("(written by hand) no", None),
    ("No", None),
    ("auto-replied (vacation)", "Auto-Submitted: auto-replied"),
    ("(robot) auto-generated; owner-email=\"a@example.org\"", "Auto-Submitted: auto-generated"),
    ("Auto-Replied", "Auto-Submitted: auto-replied"),
])
def test_auto_submitted_is_read_past_its_comments(value, says):
    assert auto_generated_reason({"auto-submitted": value}, CUSTOMER, CUSTOMER) == says
