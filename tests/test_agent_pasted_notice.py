"""An agent's reply from a mail client whose quote ticketd cannot tell (no "> ", a header block in a language
the stripper does not know) carries the notice it answers under the agent's words: that notice is cut, never
relayed to the customer."""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _text(msg) -> str:
    return body_text(msg).replace("\r\n", "\n")


def _pasted(notice, words: str, head: str) -> str:
    """The agent's words over the notice as Outlook in Greek pastes it: its header block, then the text as is."""
    return f"{words}\n\n{head}\n\n{_text(notice)}"


GREEK_HEAD = ("Από: Support <support@example.com>\nΣτάλθηκε: Τρίτη, 24 Νοεμβρίου 2026 4:00 μμ\n"
              "Προς: Alice <alice@example.com>\nΘέμα: [#1] The printer crashes")


def test_the_notice_pasted_under_the_words_does_not_reach_the_customer(desk):
    desk.send(build_mail(CUSTOMER, "The printer crashes every morning.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    notice = desk.last(ALICE)
    desk.reply_to(notice, ALICE, _pasted(notice, "Please update the driver to 3.3.", GREEK_HEAD))
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith("Please update the driver to 3.3.\n\n-- \n")
    assert "Reply to this mail" not in sent and "crashes every morning" not in sent and "Από" not in sent


def _handed_over(desk) -> tuple[int, object]:
    """A ticket Alice noted on and handed to Bob, and Bob's notice, whose conversation shows the note."""
    desk.send(build_mail(CUSTOMER, "The printer crashes every morning.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "#note\nThe customer's contract ran out in March, check before fixing.\n")
    desk.reply_to(desk.last(ALICE), ALICE, f"#assign {BOB}\n")
    return tid, desk.last(BOB)


@pytest.mark.parametrize("introduction", [
    "________________________________\n" + GREEK_HEAD,
    "Pada Selasa, 24 Nov 2026 pukul 16.00, Support <support@example.com> menulis:",
], ids=["rule over a header block", "attribution in Indonesian"])
def test_commands_apply_and_only_the_words_go_whatever_introduces_the_notice(desk, introduction):
    tid, notice = _handed_over(desk)
    assert "contract ran out" in _text(notice)     # the conversation the notice shows has the note
    desk.reply_to(notice, BOB, _pasted(notice, "#status waiting_customer\n\nDoes it crash after a restart?",
                                         introduction))
    assert desk.ticket(tid)["status"] == "waiting_customer"
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith("Does it crash after a restart?\n\n-- \n")
    assert "contract" not in sent and "is now yours" not in sent and "Pada" not in sent and "____" not in sent
    assert desk.messages(tid)[-1]["text"] == "Does it crash after a restart?"


def test_words_that_only_mention_the_customers_text_are_all_relayed(desk):
    """The notice's own first words are what is looked for: an agent citing the customer cuts nothing."""
    tid, notice = _handed_over(desk)
    words = "You wrote: The printer crashes every morning.\n\nPlease send the log from that time."
    desk.reply_to(notice, BOB, words + "\n")
    assert _text(desk.last(CUSTOMER)).startswith(words + "\n\n-- \n")


def test_a_customer_accepting_over_our_pasted_proposal_accepts(desk):
    """The customer's client pastes our proposal under "Yes" the same way: the ticket's text is the "Yes"."""
    desk.send(build_mail(CUSTOMER, "The printer crashes every morning.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nHold the power button for ten seconds.\n")
    proposal = desk.last(CUSTOMER)
    desk.reply_to(proposal, CUSTOMER, _pasted(proposal, "Yes, that solved it. Thank you!", GREEK_HEAD))
    assert desk.ticket(tid)["status"] == "closed"
    assert desk.messages(tid)[-1]["text"] == "Yes, that solved it. Thank you!"


def test_a_reply_in_html_over_our_notices_html_does_not_relay_it(desk):
    """Outlook answers in HTML: our notice's HTML under its header block, and a text part made from it all."""
    from ingest.html_text import html_to_text

    tid, notice = _handed_over(desk)
    ours = notice.get_body(("html",)).get_content()
    html = ("<p>Does it crash after a restart?</p><hr><div><b>Από:</b> Support &lt;support@example.com&gt;<br>"
            "<b>Στάλθηκε:</b> Τρίτη, 24 Νοεμβρίου 2026 4:00 μμ<br><b>Προς:</b> Bob &lt;bob@example.com&gt;<br>"
            "<b>Θέμα:</b> [#1] Printer on fire</div><br>" + ours)
    desk.reply_to(notice, BOB, html_to_text(html), html=html)
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith("Does it crash after a restart?\n\n-- \n")
    assert "contract" not in sent and "is now yours" not in sent


def test_the_notice_of_a_customers_mail_pasted_with_its_signed_address_does_not_reach_the_customer(desk):
    """That notice opens with "Cust <…> wrote on [#1]:", where the reply stripper cuts as at an attribution:
    the block introducing it stayed, naming the agent's signed reply address."""
    desk.send(build_mail(CUSTOMER, "The printer crashes every morning.\n"))
    desk.assign(desk.ticket()["id"])
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "It crashed again today at 9.\n")
    notice = desk.last(ALICE)
    signed = str(notice["Reply-To"]).strip("<>")
    head = (f"Από: Support <{signed}>\nΣτάλθηκε: Τρίτη, 24 Νοεμβρίου 2026 4:00 μμ\n"
            "Προς: Alice <alice@example.com>\nΘέμα: [#1] The printer crashes")
    desk.reply_to(notice, ALICE, _pasted(notice, "Please update the driver to 3.3.", head))
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith("Please update the driver to 3.3.\n\n-- \n")
    assert signed not in sent and "Από" not in sent
