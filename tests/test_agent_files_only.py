"""An agent's reply that carries files and no words of its own: the files go where a reply goes.

A reply with a PDF and nothing typed was kept as an internal message and
nobody was told; the same under the client's quote of the notice reached
the customer as the quote's attribution line ("On Tue, ... Support wrote:")
alone; and `#status waiting_customer` with the form to fill in told the
customer "we need something from you" without the form. Files without
words now reach the customer as a reply of their own, or with the status
mail the command sends; a reply with nothing to send is refused, the agent
told, as a reply with only the quoted mail is.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.views import show_ticket

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
FORM = b"%PDF-1.4\n" + bytes(range(256)) * 8
GMAIL = "On Tue, Nov 24, 2026 at 8:27 PM Support <support@example.com> wrote:"
CARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice\r\nEMAIL:alice@example.com\r\nEND:VCARD\r\n"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _assigned(desk) -> int:
    return desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)


def _reply(desk, received, sender: str, body: str, *files):
    """A mail client's reply to `received` with files: (name, bytes, maintype, subtype)."""
    msg = build_mail(sender, body, to=str(received["Reply-To"]), subject="Re: " + str(received["Subject"]),
                     in_reply_to=str(received["Message-ID"]))
    for name, data, maintype, subtype in files:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return desk.send(msg)


def _quoted(received) -> str:
    """The notice quoted as Gmail lays out a reply with nothing typed above it."""
    return "\n\n" + GMAIL + "\n" + "\n".join("> " + line for line in body_text(received).splitlines()) + "\n"


def _files(mail) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments()}


def _text(mail) -> str:
    return body_text(mail).replace("\r\n", "\n")


PDF = ("form.pdf", FORM, "application", "pdf")


@pytest.mark.parametrize("body", ["", "quoted"])
def test_a_file_sent_without_words_reaches_the_customer(desk, body):
    tid = _assigned(desk)
    notice = desk.last(ALICE)
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, notice, ALICE, _quoted(notice) if body == "quoted" else "", PDF)
    [relayed] = desk.inbox(CUSTOMER)[before:]
    assert _files(relayed) == {"form.pdf": FORM}
    text = _text(relayed)
    # A short neutral line in place of words, and nothing of the agent's client: no attribution, no quote.
    assert text.startswith("Attached: form.pdf\n")
    assert "wrote:" not in text and "Nov 24" not in text and "> " not in text
    ticket = desk.ticket(tid)
    assert ticket["status"] == "open" and ticket["first_response_at"] is not None
    [event] = desk.events(tid, "agent_replied")
    [stored] = [m for m in show_ticket(desk.app.engine, tid)["messages"] if m.get("from") == ALICE]
    assert not stored["internal"] and [a["filename"] for a in stored["attachments"]] == ["form.pdf"]
    assert event["message_id"] == stored["id"]
    assert stored["text"] == ""


def test_a_form_sent_with_waiting_customer_goes_with_the_mail_that_asks_for_it(desk):
    tid = _assigned(desk)
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, desk.last(ALICE), ALICE, "#status waiting_customer\n", PDF)
    [asked] = desk.inbox(CUSTOMER)[before:]
    text = _text(asked)
    assert "we need something from you to go on with ticket" in text
    assert _files(asked) == {"form.pdf": FORM} and "Attached: form.pdf" in text
    assert desk.ticket(tid)["status"] == "waiting_customer"
    [stored] = [m for m in show_ticket(desk.app.engine, tid)["messages"] if m.get("from") == ALICE]
    assert not stored["internal"] and [a["filename"] for a in stored["attachments"]] == ["form.pdf"]


def test_a_file_is_a_proposed_solution_on_its_own(desk):
    tid = _assigned(desk)
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, desk.last(ALICE), ALICE, "#propose\n", ("fix.pdf", FORM, "application", "pdf"))
    [proposal] = desk.inbox(CUSTOMER)[before:]
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert _files(proposal) == {"fix.pdf": FORM}
    text = _text(proposal)
    assert text.startswith("Attached: fix.pdf\n") and 'reply with "accept"' in text


def test_a_contact_card_alone_is_no_reply_and_the_agent_is_told(desk):
    """The card never reaches a customer (PRODUCT.md: no agent's private address), so nothing would."""
    tid = _assigned(desk)
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, desk.last(ALICE), ALICE, "", ("Alice.vcf", CARD, "text", "vcard"))
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.ticket(tid)["status"] == "new" and desk.events(tid, "commands_rejected")
    answer = _text(desk.last(ALICE))
    assert "no text of its own" in answer and "nothing was sent to the customer" in answer


def test_a_file_sent_from_a_notes_mail_stays_with_the_agents(desk):
    tid = _assigned(desk)
    desk.send(build_mail(BOB, "#priority high\n", to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}] x"))
    _reply(desk, desk.last(ALICE), ALICE, "#note\nThe contract is coming.\n")
    note_mail = desk.last(BOB)
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, note_mail, BOB, "", ("contract.pdf", FORM, "application", "pdf"))
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/internal_note"
    assert _files(desk.last(ALICE)) == {"contract.pdf": FORM}
    assert desk.messages(tid)[-1]["internal"] and desk.ticket(tid)["status"] == "new"


def test_a_file_under_note_alone_is_a_note_for_the_agents(desk):
    tid = _assigned(desk)
    desk.send(build_mail(BOB, "#priority high\n", to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}] x"))
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, desk.last(ALICE), ALICE, "#note\n", ("contract.pdf", FORM, "application", "pdf"))
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.events(tid)[-1]["kind"] == "internal_note"
    assert _files(desk.last(BOB)) == {"contract.pdf": FORM}
    assert desk.messages(tid)[-1]["internal"] and desk.ticket(tid)["status"] == "new"


def test_a_form_sent_again_while_waiting_is_sent_not_answered_as_changing_nothing(desk):
    """`#status waiting_customer` alone, on a ticket already waiting, changes nothing; with a file it sends it."""
    tid = _assigned(desk)
    _reply(desk, desk.last(ALICE), ALICE, "#status waiting_customer\nWhich model is it?\n")
    before = len(desk.inbox(CUSTOMER))
    _reply(desk, desk.last(ALICE), ALICE, "#status waiting_customer\n", PDF)
    [sent] = desk.inbox(CUSTOMER)[before:]
    assert _files(sent) == {"form.pdf": FORM} and _text(sent).startswith("Attached: form.pdf\n")
    assert desk.ticket(tid)["status"] == "waiting_customer" and not desk.events(tid, "commands_unchanged")
    assert "changed nothing: #status waiting_customer" in desk.events(tid, "agent_replied")[-1]["reason"]
