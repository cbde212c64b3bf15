"""What a customer wrote in a subject comes back in the subject of our mail letter for letter, tag aside.

Joiners and marks are part of the text: Persian writes a word with a zero width non-joiner in it, an
emoji family is joined by zero width joiners, a subdivision flag is spelled with tag characters, and
right-to-left text may carry directional marks. Only what can break or turn round a header line goes.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from outbound.outbox import as_wire_bytes, compose
from tests.desk import body_text, build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice

CUSTOMER = "cust@example.org"
TICKET = dict(id=42, subject="Printer", status="open", priority="normal", requester=CUSTOMER,
              requester_name="Customer", assignee="alice@example.com", postponed_until=None, dev_due=None)

SUBJECTS = {
    "persian word with a non-joiner": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u0633\u0641\u0627\u0631\u0634",
    "emoji family": "Family photo \U0001f468\u200d\U0001f469\u200d\U0001f467 will not upload",
    "subdivision flag": "Shipping to \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "hebrew with marks": "\u200f\u05e9\u05dc\u05d5\u05dd\u200f order 12",
    "emoji newer than our unicode tables": "Printer \U0001fae8 again",
}


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.mark.parametrize("subject", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_the_acknowledgement_repeats_the_customers_subject_as_written(desk, subject):
    desk.send(build_mail(CUSTOMER, "Hello.\n", subject=subject))
    ticket = desk.ticket()
    assert ticket["subject"] == subject
    ack = desk.last(CUSTOMER)
    assert str(ack["Subject"]) == f"[#{ticket['id']}] {subject}"
    assert f"    {subject}" in body_text(ack).splitlines()   # the text says it the same way


@pytest.mark.parametrize("unsafe, shown", [
    ("Printer\r\nBcc: victim@example.net", "Printer Bcc: victim@example.net"),
    ("Printer\u2028on\u2029fire\x85now\tplease", "Printer on fire now please"),
    ("invoice \u202efdp.exe", "invoice fdp.exe"),                 # RLO would show "exe.pdf"
    ("\u2066Printer\u2069 \u202aon\u202c fire", "Printer on fire"),
])
def test_breaks_and_direction_overrides_never_reach_a_header(make_app, sqlite_url, unsafe, shown):
    """RFC 5322 section 2.2: a header field is one line; UAX #9 overrides and isolates turn text round
    for display, as ingest drops them from what customers send (ingest/headers.py)."""
    app = make_app(sqlite_url)
    notice = Notice("requester/agent_reply", CUSTOMER, 42, auto_submitted=None, from_name=unsafe,
                    context={"text": "Unplug it.", "agent_name": "Alice"})
    raw = as_wire_bytes(compose(app, notice, dict(TICKET, subject=unsafe), [], "m1@example.com", utcnow()))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == f"[#42] {shown}"
    assert parsed["From"].addresses[0].display_name == shown
    assert parsed["Bcc"] is None and not parsed.defects
