"""Inline replies: the writer's answers between quoted questions stay in the reply, with the questions they answer."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text
from ingest.quotes import own_reply, strip_reply
from tests.desk import body_text, build_mail, open_desk

ATTRIBUTION = "On Mon, 2 Nov 2026 at 10:00, Support <support@example.com> wrote:"
QUESTIONS = "> Which version do you use?\n\n3.2\n\n> Does it happen after a restart?\n\nYes, every time."


@pytest.mark.parametrize("text, expected", [
    # A greeting, the attribution, then answers between the questions; the quoted tail goes.
    (f"Hi,\n\n{ATTRIBUTION}\n{QUESTIONS}\n\n> Regards, Alice\n", f"Hi,\n\n{QUESTIONS}"),
    # The attribution at the very top: the first question stays too, the attribution goes.
    (f"{ATTRIBUTION}\n{QUESTIONS}\n\n> Regards, Alice\n", QUESTIONS),
    # Only quotes and answers, no attribution.
    (f"{QUESTIONS}\n\n> Regards, Alice\n", QUESTIONS),
    # No quoted tail: the mail ends with the last answer.
    (f"Hi,\n\n{ATTRIBUTION}\n{QUESTIONS}\n", f"Hi,\n\n{QUESTIONS}"),
    # One question answered under a greeting.
    (f"Hi,\n\n{ATTRIBUTION}\n> Which version do you use?\n\nIt is 3.2, bought last year.\n",
     "Hi,\n\n> Which version do you use?\n\nIt is 3.2, bought last year."),
    # A lower-case answer right under the question mark.
    (f"{ATTRIBUTION}\n> Does it happen after a restart?\nyes\n> Which version?\n3.2\n",
     "> Does it happen after a restart?\nyes\n> Which version?\n3.2"),
    # The quoted mail was itself a reply: its attribution, inside the answers, goes as well.
    ((f"Hi,\n\n{ATTRIBUTION}\n> Which version do you use?\n\n3.2\n\n"
      "On Sun, 1 Nov 2026 at 09:00, Bob <bob@example.org> wrote:\n\n> > It crashes.\n\nStill crashing.\n"),
     "Hi,\n\n> Which version do you use?\n\n3.2\n\n\n> > It crashes.\n\nStill crashing."),
])
def test_answers_between_quotes_are_kept(text, expected):
    assert strip_reply(text) == expected
    assert own_reply(text) == expected


OUTLOOK_HISTORY = ("________________________________\nFrom: Support <support@example.com>\n"
                   "Sent: Monday, 2 November 2026 09:00\nTo: Bob <bob@example.org>\nSubject: Re: [#12] crash\n\n")
FORWARDED = ("---------- Forwarded message ---------\nFrom: Carol <carol@example.org>\nDate: Sun, 1 Nov 2026\n"
             "Subject: crash\n\n")


@pytest.mark.parametrize("tail", [
    "-- \nBob Smith\nAcme Inc.\n\n> Regards, Alice\n",                        # RFC 3676 section 4.3
    "Sent from my iPhone\n\n> Regards, Alice\n",
    OUTLOOK_HISTORY + "Does it crash?\n\nIt did.\n",
    FORWARDED + "It crashes for me too.\n",
    "> Regards, Alice\n\nThanks,\nBob\n",                                    # a sign-off after the tail
    "> Regards, Alice\n\n_______________________\nAnd here's my signature.\n",  # a footer under a rule
])
def test_inline_reply_ends_at_the_last_answer(tail):
    text = f"Hi,\n\n{ATTRIBUTION}\n{QUESTIONS}\n\n{tail}"
    assert strip_reply(text) == f"Hi,\n\n{QUESTIONS}"


def test_a_quoted_tail_over_the_signature_goes_without_an_attribution_too():
    assert strip_reply(f"{QUESTIONS}\n\n> Regards, Alice\n\n-- \nBob Smith\n") == QUESTIONS


def test_inline_reply_made_text_from_html():
    html = ('<div dir="ltr">Hi,</div><br><div class="gmail_quote"><div class="gmail_attr">'
            f'{ATTRIBUTION.replace("<", "&lt;").replace(">", "&gt;")}</div>'
            '<blockquote class="gmail_quote">Which version do you use?</blockquote>'
            '<div>3.2</div>'
            '<blockquote class="gmail_quote">Does it happen after a restart?</blockquote>'
            '<div>Yes, every time.</div>'
            '<blockquote class="gmail_quote">Regards, Alice</blockquote></div>')
    got = strip_reply(html_to_text(html))
    assert got.startswith("Hi,") and got.endswith("Yes, every time.")
    assert "> Which version do you use?" in got and "3.2" in got and "> Does it happen after a restart?" in got
    assert "wrote:" not in got and "Regards" not in got


@pytest.mark.parametrize("below", [
    # The common top-post: only the text above the quote, as before.
    "> Shall we replace it?\n> Regards, Alice\n",
    # A sign-off, a signature or a footer under the quoted history is no answer.
    "> Shall we replace it?\n\nThanks,\nBob\n",
    "> Shall we replace it?\n\n-- \nBob Smith\nAcme Inc.\n",
    "> Shall we replace it?\n\nSent from my iPhone\n",
    ("> Shall we replace it?\n\n_______________________________________________\nsupport-users mailing list\n"
     "support-users@lists.example.org\nhttps://lists.example.org/listinfo\n"),
    # A gateway's disclaimer under everything.
    ("> Shall we replace it?\n\nThis e-mail is confidential and intended solely for the addressee. If you are not "
     "the intended recipient, please delete it and notify the sender.\n"),
    # A quoted line wrapped by the mailer without its ">" is part of the quote.
    "> We will send the replacement on Monday, please\nconfirm the address.\n> Regards, Alice\n",
    # Text under an attribution without quote marks is the quoted mail.
    "\nShall we replace it?\nRegards, Alice\n",
])
def test_replies_above_the_quote_strip_as_before(below):
    assert strip_reply(f"Yes, fine.\n\n{ATTRIBUTION}\n{below}") == "Yes, fine."


def test_answers_under_a_quoted_mails_headers_are_history():
    # Under an Outlook header block everything is history, quoted or not.
    assert strip_reply(f"Yes, fine.\n\n{OUTLOOK_HISTORY}> Does it crash?\n\nIt did.\n") == "Yes, fine."


def test_a_forwarded_mail_is_kept_whole_with_its_own_quotes():
    """A mail passed on is what the writer sends, not this conversation's history (tests/test_quotes.py)."""
    text = f"Yes, fine.\n\n{FORWARDED}> Does it crash?\n\nIt did.\n"
    assert strip_reply(text) == text.strip()


@pytest.mark.parametrize("text, expected", [
    # Bottom-posting under one quote block: the text under it is the reply.
    (f"{ATTRIBUTION}\n> Shall we replace it?\n> Regards, Alice\n\nThanks,\nBob\n", "Thanks,\nBob"),
    (f"{ATTRIBUTION}\n\n> Shall we replace it?\n\nYes, please do.\n", "Yes, please do."),
    (f"{ATTRIBUTION}\n> Shall we replace it?\n\nYes, please do.\n\n-- \nBob Smith\n", "Yes, please do."),
])
def test_bottom_posting_keeps_the_text_under_the_quote(text, expected):
    assert strip_reply(text) == expected


def test_supercite_quotes_count_as_quotes():
    text = (f"Hi,\n\n{ATTRIBUTION}\n> Which version do you use?\n\n3.2\n\n"
            "AL> Regards,\nAL> Alice\n")
    assert strip_reply(text) == "Hi,\n\n> Which version do you use?\n\n3.2"


CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _answer_inline(received, greeting: str, answers: dict[str, str]) -> str:
    """A reply to `received` the way a person answers inline: its text quoted, an answer under each asked line."""
    lines = [greeting, "", "On Mon, 2 Nov 2026 at 10:00, Support <support@example.com> wrote:"]
    for line in body_text(received).splitlines():
        lines.append(f"> {line}".rstrip())
        asked = line.lstrip("> ").strip()
        if asked in answers:
            lines += ["", answers[asked], ""]
    return "\n".join(lines) + "\n"


def test_inline_answers_reach_the_assignee_and_the_customer(desk):
    desk.send(build_mail(CUSTOMER, "The printer crashes.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Which version do you use?\n\nDoes it happen after a restart?\n")
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, _answer_inline(desk.last(CUSTOMER), "Hi,", {
        "Which version do you use?": "3.2", "Does it happen after a restart?": "Yes, every time."}))
    stored = desk.messages(tid)[-1]["text"]
    assert stored.startswith("Hi,") and stored.endswith("Yes, every time.") and "wrote:" not in stored
    told = body_text(desk.last(ALICE))
    assert "3.2" in told and "Yes, every time." in told and "> Does it happen after a restart?" in told
    # The agent answers inline in turn: both answers reach the customer.
    desk.reply_to(desk.last(ALICE), ALICE, _answer_inline(desk.last(ALICE), "Thanks.", {
        "3.2": "Please update to 3.3.", "Yes, every time.": "Then it is the known bug."}))
    sent = body_text(desk.last(CUSTOMER))
    assert "Please update to 3.3." in sent and "Then it is the known bug." in sent
