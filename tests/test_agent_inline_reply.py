"""An agent's inline reply reaches the customer with the quoted questions its answers stand under.

The reply-stripper keeps an inline reply's answers with the quotes between
them (tests/test_quotes_inline.py), but every quoted line was then dropped
from an agent's reply: the customer got "Please update to 3.3." and "Then it
is the known bug." without the lines they answer. Each answer under a quote
now goes with the quoted paragraph right above it; a top-posted reply, and
a quote under or above everything the agent wrote, go as before.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
ATTRIBUTION = "On Mon, 2 Nov 2026 at 10:00, Support <support@example.com> wrote:"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _inline(received, above: str, answers: dict[str, str]) -> str:
    """A reply to `received` as a person answers inline: `above`, its text quoted, an answer under each asked line."""
    lines = [above, "", ATTRIBUTION] if above else [ATTRIBUTION]
    for line in body_text(received).splitlines():
        lines.append(f"> {line}".rstrip())
        if line.lstrip("> ").strip() in answers:
            lines += ["", answers[line.lstrip("> ").strip()], ""]
    return "\n".join(lines) + "\n"


def _text(msg) -> str:
    return body_text(msg).replace("\r\n", "\n")


def _customer_answered(desk) -> int:
    """A ticket whose customer answered Alice's two questions inline; Alice has just been told."""
    desk.send(build_mail(CUSTOMER, "The printer crashes.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Which version do you use?\n\nDoes it happen after a restart?\n")
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, _inline(desk.last(CUSTOMER), "Hi,", {
        "Which version do you use?": "3.2", "Does it happen after a restart?": "Yes, every time."}))
    return tid


ANSWERS = {"3.2": "Please update to 3.3.", "Yes, every time.": "Then it is the known bug."}
RELAYED = "> 3.2\n\nPlease update to 3.3.\n\n> Yes, every time.\n\nThen it is the known bug.\n"


def test_an_inline_answer_reaches_the_customer_under_the_question_it_answers(desk):
    tid = _customer_answered(desk)
    desk.reply_to(desk.last(ALICE), ALICE, _inline(desk.last(ALICE), "Thanks.", ANSWERS))
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith("Thanks.\n\n" + RELAYED)
    # Only the paragraph each answer stands under: not the notice's lines around the customer's text.
    assert "wrote on" not in sent and "Reply to this mail" not in sent and "> Hi," not in sent
    assert desk.messages(tid)[-1]["text"] == "Thanks.\n\n" + RELAYED.rstrip("\n")


def test_commands_on_top_of_an_inline_reply_still_apply(desk):
    tid = _customer_answered(desk)
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\n#priority high\n\n"
                  + _inline(desk.last(ALICE), "", ANSWERS))
    assert (desk.ticket(tid)["status"], desk.ticket(tid)["priority"]) == ("waiting_customer", "high")
    sent = _text(desk.last(CUSTOMER))
    assert sent.startswith(RELAYED)
    assert "#status" not in sent and "#priority" not in sent


def test_a_top_posted_reply_goes_as_before(desk):
    _customer_answered(desk)
    told = desk.last(ALICE)
    quoted = "".join(f"> {line}\n" for line in body_text(told).splitlines())
    desk.reply_to(told, ALICE, f"Please update to 3.3.\n\nIt is the known bug.\n\n{ATTRIBUTION}\n{quoted}")
    assert _text(desk.last(CUSTOMER)).startswith("Please update to 3.3.\n\nIt is the known bug.\n\n-- \n")


def test_an_inline_answer_under_an_internal_note_is_held_back(desk):
    """A quoted note is no question for the customer: the reply carries the note's text and is not sent."""
    secret = "The customer still owes us 40k for the last printer"
    tid = _customer_answered(desk)
    desk.send(build_mail(BOB, "#priority high\n", to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}]"))
    desk.reply_to(desk.last(ALICE), ALICE, f"#note\n{secret}.\n")
    note_mail = desk.last(BOB)
    assert secret in body_text(note_mail)
    before = len(desk.inbox(CUSTOMER))
    # Through his reply address of another mail of the ticket (one to the note's own is a note itself).
    desk.send(build_mail(BOB, _inline(note_mail, "Thanks.", {f"{secret}.": "Then we wait for the payment."}),
                         to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}]",
                         in_reply_to=str(note_mail["Message-ID"])))
    assert len(desk.inbox(CUSTOMER)) == before
    assert "internal note" in body_text(desk.last(BOB)) and desk.events(tid)[-1]["kind"] == "commands_rejected"


@pytest.mark.parametrize("text, body", [
    # Each answer under the last paragraph of the quote above it; a quote under the last answer goes.
    ("Hi,\n\n> Alice wrote on [#1]:\n>\n> Which version?\n\n3.2\n\n>\n> > Restart?\n>\n> Yes.\n\nKnown bug.\n\n> Reply",
     "Hi,\n\n> Which version?\n\n3.2\n\n> Yes.\n\nKnown bug."),
    # No greeting: the first answer's question is kept too, below the commands only.
    ("#close\n> q1\n\nFirst.\n\n> q2\n> q2b\n\nSecond.\n> q3\nThird.\n\n\nFourth.",
     "> q1\n\nFirst.\n\n> q2\n> q2b\n\nSecond.\n> q3\nThird.\n\n\nFourth."),
    ("> above the command\n#close\nFirst.\n\n> q2\n\nSecond.", "First.\n\n> q2\n\nSecond."),
    # A greeting and one answer under a quote is an inline reply (as ingest/quotes.py reads it).
    ("Hi,\n\n> a\n> > b\n>\n> c\n\nAnswer.", "Hi,\n\n> c\n\nAnswer."),
    # Not inline: no quote between two of the agent's lines. As before, no quote goes.
    ("> q1\n\nFirst.\n\nSecond.\n\n> tail", "First.\n\nSecond."),
    ("Top-posted.\n\n> the whole notice\n> Reply to this mail", "Top-posted."),
])
def test_read_inline_answers(text, body):
    from ticketd.domain.commands import read_agent_reply

    assert read_agent_reply(text).body == body


def test_a_quoted_line_the_customer_never_saw_is_not_relayed_with_its_answer(desk):
    """Only quotes of the ticket's public mail go to the customer: a short note line or the notice's own
    words slip past the note check (it looks for lines of 20 characters or more): the quote stays behind."""
    tid = _customer_answered(desk)
    desk.send(build_mail(BOB, "#priority high\n", to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}]"))
    desk.reply_to(desk.last(ALICE), ALICE, "#note\nRefund: no.\n")
    told = desk.last(BOB)
    assert "Refund: no." in body_text(told)
    asked = [line.lstrip("> ").strip() for line in body_text(told).splitlines()]
    header = next(line for line in asked if "internal note on" in line)
    desk.send(build_mail(BOB, _inline(told, "Hello,", {"Refund: no.": "We cannot refund it.", header: "More below."}),
                         to=desk.agent_address(tid, BOB), subject=f"Re: [#{tid}]", in_reply_to=str(told["Message-ID"])))
    sent = _text(desk.last(CUSTOMER))
    assert "We cannot refund it." in sent and "More below." in sent
    assert "Refund" not in sent and "internal note" not in sent
    assert "Refund" not in desk.messages(tid)[-1]["text"]
