"""Answers that only look like an acceptance or only a rating: a question or a frown beside the accept word,
and a trouble in Title Case under the numbers or the thanks, where a name would sign.

PRODUCT.md: the accept word closes the ticket, any other reply rejects the
proposal with its text as the reason; a reply to a closed ticket reopens it
unless it is only a rating.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.domain.lifecycle import customer_reply_effect, is_acceptance, is_only_courtesy, parse_rating
from ticketd.domain.statuses import Status
from ticketd.settings import DEFAULT_ACCEPT_WORDS

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _agent_answered(desk, reply: str, status: str) -> int:
    """A customer's new ticket, assigned to Alice, whose `reply` leaves it in `status`."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, reply)
    assert desk.ticket(tid)["status"] == status
    return tid


def _proposed(desk) -> int:
    return _agent_answered(desk, "#propose\nRestart the printer.\n", "solution_proposed")


def _closed(desk) -> int:
    return _agent_answered(desk, "#close\nReplaced the fuser.\n", "closed")


@pytest.mark.parametrize("answer", ["Ok?\n", "Yes!?\n", "好的？\n", "ok 👎\n", "Ok :(\n", "Yes 😞\n"])
def test_an_accept_word_asked_or_frowned_rejects_the_proposal(desk, answer):
    """"Ok?" asks what the proposal means, "ok 👎" takes the ok back: neither closes the ticket."""
    tid = _proposed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, answer)
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "accepted") == []
    rejected = desk.events(tid, "rejected")[-1]
    assert answer.strip() in rejected["reason"]
    assert "[rejected the proposed solution" in body_text(desk.last(ALICE))


@pytest.mark.parametrize("text", ["ok?", "Yes!?", "OK ?", "Hi,\nok?", "ok 👎", "OK 👎🏻", "Ok :(", "ok :-(",
                                  "Yes :/", "Ok 🙁", "Да ☹️"])
def test_a_question_or_a_frown_on_the_answer_line_accepts_nothing(text):
    assert not is_acceptance(text, DEFAULT_ACCEPT_WORDS)


@pytest.mark.parametrize("text", ["ok", "Ok 👍", "yes 🙂", "OK, thanks :)", "Yes :-)"])
def test_a_plain_or_smiling_accept_word_still_accepts(text):
    assert is_acceptance(text, DEFAULT_ACCEPT_WORDS)


@pytest.mark.parametrize("reply", ["5 5 5\nThanks\nStill Broken\n", "4 4 4\nThanks,\nRefund Please\n",
                                   "5 5 5\nStill Broken\n", "5 4 5\nCheers,\nNot Fixed\n"])
def test_a_trouble_in_title_case_under_a_rating_reopens_and_reaches_the_assignee(desk, reply):
    """Read as the name that signs, "Still Broken" kept the ticket closed, and no one was told of it."""
    tid = _closed(desk)
    told = len(desk.inbox(ALICE))
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, reply)
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "reopened")[-1]["from_value"] == "closed"
    assert desk.ratings(tid) == []
    assert len(desk.inbox(ALICE)) == told + 1
    assert reply.splitlines()[-1] in body_text(desk.last(ALICE))


def test_thanks_over_a_trouble_in_title_case_reopens(desk):
    tid = _closed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Thanks!\nStill Broken\n")
    assert desk.ticket(tid)["status"] == "open"
    assert "the ticket was closed; this reply opened it again" in body_text(desk.last(ALICE))


@pytest.mark.parametrize(("text", "rating"), [("5 5 5\nThanks\nNada", (5, 5, 5)), ("5 4 5\nMa Long", (5, 4, 5)),
                                              ("5 5 5 thanks Bob", (5, 5, 5)), ("5 5 4\nCarl", (5, 5, 4))])
def test_a_name_still_signs_a_rating(text, rating):
    """Names that are words of contrast in some language ("Nada", "Ma") still sign."""
    assert parse_rating(text) == rating
    assert customer_reply_effect(Status.CLOSED, text, DEFAULT_ACCEPT_WORDS).kind == "rated"


@pytest.mark.parametrize("text", ["5 5 5\nThanks\nHelp", "5 5 5 thanks Same Error", "5 5 5\nCancel"])
def test_no_name_holds_a_request_or_a_trouble(text):
    assert parse_rating(text) is None
    assert customer_reply_effect(Status.CLOSED, text, DEFAULT_ACCEPT_WORDS).kind == "reopened"


def test_thanks_signed_by_a_trouble_is_no_courtesy():
    assert not is_only_courtesy("Thanks!\nStill Broken")
    assert is_only_courtesy("Thanks!\nNada")
