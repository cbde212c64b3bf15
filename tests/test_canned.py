"""`#canned <name>`: a saved reply goes out as the agent's reply, rendered for the ticket; a wrong name is refused."""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.store.tables import outbox

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, db_url, tmp_path):
    overrides = tmp_path / "overrides"
    (overrides / "canned").mkdir(parents=True)
    (overrides / "canned" / "refund.txt").write_text(
        "Dear customer, your refund for \"{{ ticket.subject }}\" is on its way.\n-- {{ agent_name }}\n")
    (overrides / "canned" / "Bad Name.txt").write_text("never offered: not a plain name\n")
    yield from open_desk(make_app, db_url, extra=f"templates_dir: {overrides}\n")


def _ticket(desk, subject: str = "Printer on fire") -> int:
    tid = desk.open_assigned(CUSTOMER, "It is on fire.\n", ALICE, subject=subject)
    return tid


def _agent_mail(desk, tid, body):
    return desk.send(build_mail(ALICE, body, to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer"))


def test_a_saved_reply_goes_to_the_customer_with_the_agents_words_below(desk):
    tid = _ticket(desk)
    _agent_mail(desk, tid, "#canned need-more-info\nAlso: which printer model is it?\n")
    text = body_text(desk.last(CUSTOMER)).replace("\r\n", "\n")
    assert text.startswith("Thank you for your message. To find out what is going on")
    assert f"it stays on ticket [#{tid}]." in text
    assert text.index("it stays on ticket") < text.index("Also: which printer model is it?")
    assert "#canned" not in text
    stored = desk.messages(tid)[-1]
    assert not stored["internal"] and stored["text"].startswith("Thank you for your message.")
    assert desk.ticket(tid)["status"] == "open"       # a first agent reply, as any


def test_an_admins_saved_reply_is_rendered_and_customer_text_stays_text(desk):
    tid = _ticket(desk, subject="Money back {{ 7*7 }}")
    _agent_mail(desk, tid, "#canned Refund\n")
    text = body_text(desk.last(CUSTOMER))
    assert 'your refund for "Money back {{ 7*7 }}" is on its way.' in text and "-- Alice" in text


@pytest.mark.parametrize("name", ["nonexistent", "../canned/refund", "Bad Name"])
def test_a_name_that_is_no_saved_reply_is_refused_and_the_choices_named(desk, name):
    tid = _ticket(desk)
    before = len(desk.rows(outbox, recipient=CUSTOMER))
    _agent_mail(desk, tid, f"#canned {name}\n")
    assert len(desk.rows(outbox, recipient=CUSTOMER)) == before
    rejected = desk.last(ALICE)
    assert "Command not applied" in str(rejected["Subject"])
    text = body_text(rejected)
    assert "saved replies: need-more-info, refund." in text or "#canned takes the name of one saved reply" in text
    assert desk.ticket(tid)["status"] == "new"


def test_a_saved_reply_under_note_stays_with_the_agents_and_can_be_a_proposal(desk):
    tid = _ticket(desk)
    before = len(desk.rows(outbox, recipient=CUSTOMER))
    _agent_mail(desk, tid, "#note\n#canned refund\n")
    assert len(desk.rows(outbox, recipient=CUSTOMER)) == before
    assert desk.messages(tid)[-1]["internal"] and "is on its way" in desk.messages(tid)[-1]["text"]

    # (Not the note's text again: a reply holding a note's text is held back from the customer.)
    _agent_mail(desk, tid, "#propose\n#canned need-more-info\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert "To find out what is going on" in body_text(desk.last(CUSTOMER))
