"""An agent's reply from Outlook reaches the customer without its winmail.dat.

Outlook sends rich text to outside recipients as a text part and one `application/ms-tnef` winmail.dat
([MS-OXTNEF]) holding the whole mail again: its body with everything the agent's reply quoted (the
notice, with its internal notes), the sender's properties, and the attached files. Reply stripping reads
the text part; the files inside are listed apart (ingest.tnef). Relayed as a file, the winmail.dat gave
the customer what stripping had taken out (PRODUCT.md: customers never see internal notes).
"""

from __future__ import annotations

import pytest

from tests import tnef_builder as tb
from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
NOTE = "This customer owes us three invoices: no refund whatever they say."
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _noted_and_assigned(desk) -> int:
    """A ticket with a colleague's note on it, then given to Alice: her notice shows the note."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire. Please refund it.\n"))
    tid = desk.ticket()["id"]
    desk.send(build_mail(BOB, f"#note\n{NOTE}\n", to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}] x"))
    assert desk.assign(tid) == ALICE
    assert NOTE in body_text(desk.last(ALICE))
    return tid


def _outlook_reply(desk, received, answer: str, files: list[tb.File]):
    """Outlook's rich-text reply: its text with the notice quoted below, and the winmail.dat of it all."""
    quoted = (f"{answer}\n\n-----Original Message-----\nFrom: Support <support@example.com>\n"
              f"Sent: Tuesday, November 24, 2026 8:27 PM\nTo: Alice <{ALICE}>\nSubject: {received['Subject']}\n\n"
              + body_text(received))
    msg = build_mail(ALICE, quoted, to=str(received["Reply-To"]), subject="RE: " + str(received["Subject"]),
                     in_reply_to=str(received["Message-ID"]))
    msg.add_attachment(tb.tnef(files, body=quoted), maintype="application", subtype="ms-tnef",
                       filename="winmail.dat")
    return desk.send(msg)


def _files(mail) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments()}


def test_an_outlook_reply_reaches_the_customer_without_the_quoted_note_in_its_winmail_dat(desk):
    tid = _noted_and_assigned(desk)
    before = len(desk.inbox(CUSTOMER))
    _outlook_reply(desk, desk.last(ALICE), "We are looking into it.",
                   [tb.File("REPORT~1.PDF", PDF, long_name="report.pdf")])
    [relayed] = desk.inbox(CUSTOMER)[before:]
    assert body_text(relayed).startswith("We are looking into it.")
    # The file Alice attached goes, once, as the file it is; the container of her whole mail does not.
    assert _files(relayed) == {"report.pdf": PDF}
    for readable in (relayed.as_string(), relayed.as_bytes().decode("ascii", "replace")):
        assert "invoices" not in readable
    assert not any(NOTE.encode(codec) in data for data in _files(relayed).values()
                   for codec in ("utf-8", "utf-16-le"))
    assert desk.events(tid, "agent_replied")


def test_an_outlook_reply_with_no_file_of_its_own_carries_none(desk):
    _noted_and_assigned(desk)
    before = len(desk.inbox(CUSTOMER))
    _outlook_reply(desk, desk.last(ALICE), "We are looking into it.", [])
    [relayed] = desk.inbox(CUSTOMER)[before:]
    assert _files(relayed) == {} and "Attached:" not in body_text(relayed)
