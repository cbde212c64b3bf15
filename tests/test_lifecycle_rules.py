"""Lifecycle decisions, table-driven over every status and the words customers write (pure)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from ticketd.domain.lifecycle import (
    agent_may_set,
    answer_line,
    customer_reply_effect,
    is_acceptance,
    parse_key_facts,
    misread_rating,
    parse_rating,
    parse_when,
)
from ticketd.domain.statuses import Status
from ticketd.settings import DEFAULT_ACCEPT_WORDS

WORDS = DEFAULT_ACCEPT_WORDS


@pytest.mark.parametrize("status, allowed", [
    (Status.NEW, False), (Status.OPEN, True), (Status.WAITING_CUSTOMER, True), (Status.POSTPONED, True),
    (Status.IN_DEVELOPMENT, True), (Status.SOLUTION_PROPOSED, True), (Status.CLOSED, True),
])
def test_agent_may_set(status, allowed):
    assert agent_may_set(status) is allowed


@pytest.mark.parametrize("text", [
    "accept", "Accept.", "YES!", "ok", "OK\n\nthanks a lot", "\n\n  yes  \n", "Да", "принимаю", "Sí", "acepto",
    "va bene", "Accetto!", "接受", "好的。", "ｙｅｓ", "Sì", "Certo!", "Хорошо", "согласен", "是的", "同意",
    "Ok 👍", "yes 🙂", "OK 👍🏽", "ok ❤️",
    # Thanks, praise or "it works" beside the accept word, as customers write it.
    "Yes, it works now, thanks!", "OK, thanks", "ok thank you", "Да, спасибо", "Sí, gracias", "Yes – works",
    "Yes, thanks Anna", "Okay!! Works now", "好的，谢谢", "ok, great job",
    "Thanks, that solved it.", "Danke, es funktioniert!",   # thanks that say it works
    # One greeting line first, as before key facts.
    "Hi Bob,\n\nyes, it works now. Thanks!\n\nKim", "Hi Bob,\nYes\nRegards, Cust", "Здравствуйте,\nда, спасибо",
    "Hi team,\nok",
])
def test_acceptance(text):
    assert is_acceptance(text, WORDS)


@pytest.mark.parametrize("text", [
    "", "ok but it still fails", "No", "yes? it still smokes", "Not accepted", "I accept that it is broken",
    "> yes\nno it is not fixed", "> yes 👍\nno", "👍", "yes 🙂 but no",
    "OK, I'll tell Pat to install it", "Yes - but the tray jams", "ok, but", "Thanks", "Thanks, I will try it",
    "works?", "Yes, thanks, but it fails on Mondays",
    "Hi,\nstill broken", "Hi Bob,\nHi", "Hello,\n👍",   # what follows a greeting line answers
    "Hi Bob,\nThanks,\nyes",
])
def test_not_acceptance(text):
    assert not is_acceptance(text, WORDS)


def test_accept_words_are_configurable():
    assert is_acceptance("Passt", ["passt"])
    assert not is_acceptance("yes", ["passt"])


@pytest.mark.parametrize("text, rating", [
    ("5 4 5", (5, 4, 5)), ("5,4,5", (5, 4, 5)), ("5/5 4/5 3/5", (5, 4, 3)), (" 1\n2\n3\n", (1, 2, 3)),
    ("usefulness: 5, speed: 3, politeness: 4", (5, 3, 4)), ("5 4 5.", (5, 4, 5)),
    ("5-4-5", (5, 4, 5)), ("5 - 4 - 5", (5, 4, 5)), ("5/4/5", (5, 4, 5)), ("5–4–5", (5, 4, 5)),
    ("5/5-4/5-3/5", (5, 4, 3)), ("Hi,\n5-4-5\nThanks", (5, 4, 5)), ("5-4-5, thanks!", (5, 4, 5)),
    ("5-4", None), ("5-4-5-5", None), ("-5-4-5", None),
    ("5 4", None), ("5 4 5 5", None), ("6 4 5", None), ("0 4 5", None), ("5 4 5 but it broke again", None),
    ("", None),
])
def test_rating(text, rating):
    assert parse_rating(text) == rating


@pytest.mark.parametrize("text, rating", [
    ("5 4 5\n\nThanks!", (5, 4, 5)),
    ("Hi,\n\n5 4 5\n\nThank you,\nAnna", (5, 4, 5)),
    ("Hello team!\n5 5 5\nBest regards,\nAnna Smith\nACME Inc.", (5, 5, 5)),
    ("5 4 5, thanks a lot!", (5, 4, 5)),
    ("4 4 5 спасибо", (4, 4, 5)),
    ("Usefulness: 5\nSpeed: 4\nPoliteness: 5\nCheers", (5, 4, 5)),
    ("Danke!\n5 5 4", (5, 5, 4)),
    ("Hallo,\n5 4 5\nViele Grüße\nJörg", (5, 4, 5)),
    ("5 5 4\nCarl", (5, 5, 4)), ("Thanks!\n5, 5, 4\nIvy Chen", (5, 5, 4)),   # a bare name signs too
    ("5 5 4 - great job", (5, 5, 4)), ("5 5 5, perfect!", (5, 5, 5)),
    # Thanks before the numbers, on their line.
    ("Thanks! 4 5 3", (4, 5, 3)), ("Thank you, 5 4 5\nAnna", (5, 4, 5)), ("Спасибо! 5 5 4, отлично", (5, 5, 4)),
    # Praise and thanks together, a name after the thanks, and a line of them under the numbers: each of
    # these reopened the closed ticket and lost the rating.
    ("5 4 5 great, thanks", (5, 4, 5)), ("5 5 5 thanks Bob", (5, 5, 5)),
    ("5 5 5 - great service, thanks Bob!", (5, 5, 5)),
    ("5 5 5\nGreat, thanks!", (5, 5, 5)), ("5 5 5\nGreat service!", (5, 5, 5)),
    ("5 4 5\n\nThanks a lot for your quick help!", (5, 4, 5)), ("5 5 4\nThanks for the fast fix,\nAnna", (5, 5, 4)),
    # A sign-off over a signature without "-- ": a name, title and company, contact lines. Each reopened the
    # closed ticket and lost the rating.
    ("5 5 5\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234", (5, 5, 5)),
    ("5 5 5\nBest regards,\nAnna\n+49 30 1234567", (5, 5, 5)),
    ("5 4 5\n\nKind regards\nAnna Smith\nHead of IT\nACME Corp\nTel: +49 (30) 123-4567\nanna@acme.example\n"
     "www.acme.example", (5, 4, 5)),
    ("5 5 5\nMit freundlichen Grüßen\nJörg Müller\nMüller & Söhne GmbH\nHauptstr. 5\n10115 Berlin", (5, 5, 5)),
    ("5 5 5\nCheers,\nAnna Smith | Support Lead | ACME Corp\nM: 0171 2345678 | https://acme.example", (5, 5, 5)),
    ("4 5 5\nThanks,\nAnna\n12 Main St, Springfield, IL 62704", (4, 5, 5)),
])
def test_a_rating_said_politely_is_only_a_rating(text, rating):
    """PRODUCT.md: a reply to a closed ticket reopens it "unless it is only a rating"; thanks are no request."""
    assert parse_rating(text) == rating
    assert customer_reply_effect(Status.CLOSED, text, WORDS).kind == "rated"


@pytest.mark.parametrize("text", ["Yes\n5 5 5", "Ok, thanks!\n5 5 4", "Hi,\nyes\n4 5 5"])
def test_a_rating_under_a_confirmation_of_the_close_is_a_rating(text):
    """"Yes" over the numbers confirms the close the mail announced: it reopened the closed ticket."""
    assert customer_reply_effect(Status.CLOSED, text, WORDS).kind == "rated"
    assert customer_reply_effect(Status.CLOSED, "Yes\nbut it broke again", WORDS).kind == "reopened"


@pytest.mark.parametrize("text", [
    "5 5 5\nThanks, but the printer broke again",
    "5 5 5\nThanks\nIt broke again",
    "5 5 5\nIt Broke Again",
    "Hi, the printer is on fire\n5 5 5",
    "5 5 5\nThanks!\nP.S. Can you look at my invoice?",
    "5 5 5\nThanks,\nAnna\nBob\nCarol\nDave",
    # Under a sign-off, words that are no name, title, company or contact detail.
    "5 5 5\nBest regards,\nAnna\nError 404 Again", "5 5 5\nBest regards,\nAnna\nPlease call +49 30 1234567",
    "5 5 5\nBest regards,\nAnna Smith\nACME Corp\nthe printer still jams",
    "5 5 5\nBest regards,\n+49 30 1234567", "5 5 5\nAnna Smith\nACME Corp\nPhone +1 555 1234",
    "5 5 5\nRegards,\nAnna\nACME\nA\nB\nC\n+1 555 1234",
    # Capitalised words under the name are no title or company when they say something, or when no phone,
    # mail, web or postal address says it is a signature: each kept the ticket closed, read by no one.
    "1 1 1\nRegards,\nAnna\nStill Broken\nRefund Please",
    "1 1 1\nRegards,\nAnna\nACME Corp\nCancel My Subscription Now",
    "2 2 2\nThanks,\nAnna\nNot Fixed\n12 Main St", "5 4 5\nBest,\nAnna\nThe Printer Is Still On Fire",
    "1 1 1\nThanks\nAnna\nReopen This Ticket Please", "1 1 1\nRegards,\nAnna\nRefund Please",
    "Thanks 5 5 5 for nothing",
    "5 5 5\nCarl\nCall me back", "5 5 5 - great job but slow",
    "Thanks 4 5 3 but the tray jams", "Thanks! 6 5 3 but slow",
    "5 5 5\nThanks for nothing", "5 5 5 thanks but broken", "5 5 5\nThanks for the help, still broken",
    "5 5 5\nThanks for trying but it jams",
])
def test_a_rating_with_more_to_say_reopens(text):
    """Anything beyond greetings, thanks and a name is a person's words: a person reads them."""
    assert parse_rating(text) is None
    assert customer_reply_effect(Status.CLOSED, text, WORDS).kind == "reopened"


@pytest.mark.parametrize(("text", "signed_at_length"), [
    ("5 4 5", False), ("5 4 5\nThanks,\nAnna", False), ("5 5 4\nCarl", False), ("Hi,\n5 4 5\nThank you!", False),
    ("Hello team!\n5 5 5\nBest regards,\nAnna Smith\nACME Inc.", True),
    ("5 5 5\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234", True),
    ("4 5 5\nThanks,\nAnna\n12 Main St, Springfield, IL 62704", True),
])
def test_a_rating_signed_with_more_than_a_name_is_read_by_the_assignee(text, signed_at_length):
    """Lines taken for a title, a company or an address are taken so by their shape: the rating counts and
    the ticket stays closed, and the assignee reads them in case they say something."""
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert (effect.kind, effect.signed_at_length) == ("rated", signed_at_length)


@pytest.mark.parametrize(("text", "read"), [
    ("Thanks! 6 5 3", (6, 5, 3)), ("10 10 10", (10, 10, 10)), ("0, 4, 5", (0, 4, 5)),
    ("8/10 9/10 10/10", (8, 9, 10)), ("4/10 5/10 5/10", (4, 5, 5)), ("Speed: 9 usefulness: 5 polite: 5", (5, 9, 5)),
    ("Hi,\n10 10 10\nThank you,\nAnna", (10, 10, 10)),
])
def test_a_rating_off_the_scale_is_read_as_one_not_counted_and_the_requester_asked_again(text, read):
    """The closing mail asks for 1 to 5; numbers in a rating's shape off that scale are no complaint."""
    assert parse_rating(text) is None and misread_rating(text) == read
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert (effect.kind, effect.rating, effect.ask_again) == ("none", read, True)
    assert "from 1 (poor) to 5 (excellent)" in effect.unchanged_because
    assert customer_reply_effect(Status.CLOSED, text, WORDS, by_requester=False).ask_again is False


@pytest.mark.parametrize("text", ["5 4 5", "100 100 100", "5 4 5 6", "It broke again", "5 4", ""])
def test_a_rating_on_the_scale_or_anything_else_is_no_misread_rating(text):
    assert misread_rating(text) is None


# (status, text) -> (kind, to_status): every status, accept / other / rating texts.
@pytest.mark.parametrize("status, text, kind, to", [
    (Status.NEW, "more details", "none", None),
    (Status.OPEN, "more details", "none", None),
    (Status.POSTPONED, "any news?", "none", None),
    (Status.IN_DEVELOPMENT, "any news?", "none", None),
    (Status.WAITING_CUSTOMER, "here are the logs", "reopened", Status.OPEN),
    (Status.WAITING_CUSTOMER, "yes", "reopened", Status.OPEN),
    (Status.WAITING_CUSTOMER, "", "none", None),   # only the quoted question: it answers nothing
    (Status.SOLUTION_PROPOSED, "yes", "accepted", Status.CLOSED),
    (Status.SOLUTION_PROPOSED, "it still fails", "rejected", Status.OPEN),
    (Status.SOLUTION_PROPOSED, "5 4 5", "rejected", Status.OPEN),
    (Status.CLOSED, "5 4 5", "rated", None),
    (Status.CLOSED, "it broke again", "reopened", Status.OPEN),
    (Status.CLOSED, "yes", "none", None),   # an answer to the reminder that came after the close
    (Status.CLOSED, "no", "reopened", Status.OPEN),
])
def test_customer_reply_effect(status, text, kind, to):
    effect = customer_reply_effect(status, text, WORDS)
    assert (effect.kind, effect.to_status) == (kind, to)


@pytest.mark.parametrize("text, kind", [
    ("", "none"), ("Thank you!", "none"), ("Thanks a lot", "none"), ("Great, thanks!", "none"),
    ("Hi team,\nthanks, it works now 👍\n\nBest regards,\nAnna Smith", "none"), ("Danke schön!\nJörg", "none"),
    ("Thank you!\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234", "none"),
    ("Thank you!\n\nBest regards,\nAnna Smith\nACME Corp\nit broke again", "reopened"),
    ("Thanks, but it broke again", "reopened"), ("Thanks!\nP.S. the tray jams", "reopened"),
    ("Hi team,\nit broke again", "reopened"), ("Hello,\nStill Broken", "reopened"), ("Anna", "reopened"),
    ("yes", "none"), ("Thanks?", "reopened"),
])
def test_a_closed_ticket_stays_closed_for_thanks_or_no_words(text, kind):
    """The closing mail: reply with what is still wrong to reopen; courtesy alone says nothing is."""
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert effect.kind == kind
    assert (effect.unchanged_because is not None) is (kind == "none")
    assert customer_reply_effect(Status.CLOSED, text, WORDS, has_files=True).kind == "reopened"


@pytest.mark.parametrize("text", ["yes", "OK, thanks!", "Thanks!"])
def test_only_the_requester_accepts_or_rejects(text):
    """PRODUCT.md: "Only the customer accepts a proposed solution"; a follower's agreeing reply leaves it
    standing (their objection opens the ticket: tests/test_lifecycle_follower_objection.py)."""
    effect = customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS, by_requester=False)
    assert (effect.kind, effect.to_status) == ("none", None)
    assert effect.unchanged_because == "only the requester accepts or rejects a proposed solution"


def test_only_the_requester_rates():
    """The closing mail asks the requester; a follower's numbers change nothing and are not counted."""
    effect = customer_reply_effect(Status.CLOSED, "5 4 5", WORDS, by_requester=False)
    assert (effect.kind, effect.to_status, effect.rating) == ("none", None, (5, 4, 5))
    assert "only the requester" in effect.unchanged_because
    assert customer_reply_effect(Status.CLOSED, "it broke again", WORDS, by_requester=False).kind == "reopened"


@pytest.mark.parametrize("text, values, ignored", [
    ("Type: bug\nSource: web shop\nScale: all users\nReproducible: yes\n\nIt fails.",
     {"type": "bug", "source": "web shop", "scale": "all users", "reproducible": "yes"}, ()),
    ("\ntype: Feature request\n\nPlease add X.", {"type": "idea"}, ()),
    ("Type: banana\nSource: app", {"source": "app"}, ("Type: banana",)),
    ("Hello,\nType: bug", {"type": "bug"}, ()),                # one greeting line may come first
    ("Hi team,\n\nType: bug\nSource: web\n\nIt fails.", {"type": "bug", "source": "web"}, ()),
    ("Dear Support Team,\nReproducible: always", {"reproducible": "always"}, ()),
    ("Hello,\nHi,\nType: bug", {}, ()),                          # only one
    ("Hello, the app crashes\nType: bug", {}, ()),             # not at the top: text
    ("The app crashes.\nType: bug", {}, ()),
    # HTML written a paragraph per line: blank lines between the facts
    ("Type: bug\n\nSource: web\n\nScale: all\n\nIt fails.\n\nSource: not a fact",
     {"type": "bug", "source": "web", "scale": "all"}, ()),
    ("> Type: bug\nhello", {}, ()),
    ("", {}, ()),
])
def test_key_facts(text, values, ignored):
    facts = parse_key_facts(text)
    assert facts.values == values and facts.ignored == ignored


NOW = datetime(2030, 1, 31, 10, 0)


@pytest.mark.parametrize("value, when", [
    ("30s", datetime(2030, 1, 31, 10, 0, 30)), ("15m", datetime(2030, 1, 31, 10, 15)),
    ("2h", datetime(2030, 1, 31, 12, 0)), ("1d", datetime(2030, 2, 1, 10, 0)), ("1w", datetime(2030, 2, 7, 10)),
    ("2030-03-01", datetime(2030, 3, 1)), ("2030-03-01T08:00", datetime(2030, 3, 1, 8)),
    ("2030-03-01T08:00Z", datetime(2030, 3, 1, 8)), ("2030-03-01 08:00:00-05:00", datetime(2030, 3, 1, 13)),
    ("tomorrow", None), ("3 days", None), ("2030-02-30", None), ("", None), ("-1d", None),
    # out of datetime's range after the zone shift or the addition: not a date, not a crash
    ("9999-12-31T23:30:00-01:00", None), ("0001-01-01T00:30:00+01:00", None), ("999999999w", None),
])
def test_parse_when(value, when):
    assert parse_when(value, NOW) == when


@pytest.mark.parametrize("text", ["Yes, it works now, thanks!\n\nJane", "Ok, thanks!", "OK", "Accepted."])
def test_an_acceptance_after_the_close_confirms_it(text):
    """The reminder asks for "accept"; an answer that comes after the timer closed the ticket confirms the
    close: before, it reopened the ticket and put it back in an agent's queue."""
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert effect.kind == "none" and effect.unchanged_because.startswith("the reply accepts the solution")
    assert customer_reply_effect(Status.CLOSED, "Yes, but it still crashes", WORDS).kind == "reopened"


# Texts anyone writing to a ticket can send: each pattern below the rating and courtesy reading tried again
# at every character of such a run, time growing with its square (a 40 kB line held a worker for seconds,
# a megabyte for hours), and thanks were taken off one at a time for every way to end the numbers. A rating
# is now read in at most RATING_TEXT_MAX characters and RATING_LINES_MAX lines of numbers. The bound is far
# above what that takes.
@pytest.mark.parametrize("text", ["5 5 5 " + "- " * 20_000 + "x", "5 5 5\n" + "\t" * 40_000 + "x",
                                  "5 5 5\nThanks,\nAnna" + " " * 40_000 + "x|", "thanks " * 1_500,
                                  "5 5 5\n" + "Thanks,\n" * 200],
                         ids=["dashes after the numbers", "tabs under the numbers", "spaces in a signature",
                              "thanks again and again", "lines of thanks"])
def test_a_long_run_of_separators_is_read_in_linear_time(text):
    started = time.perf_counter()
    customer_reply_effect(Status.CLOSED, text, ["yes"])
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- lines under the answer, quotes above it

@pytest.mark.parametrize("text", [
    "Yes\n\nThanks, Dana", "Yes, it works now, thanks!\n-- \nDana", "Yes\nBest regards\nDana Smith\nACME Inc.",
    "Hi Bob,\nYes\n\nThank you, it works.\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234",
    "OK\nThanks a lot for your quick help!\nKim",
])
def test_an_acceptance_may_be_thanked_and_signed_below(text):
    assert is_acceptance(text, WORDS)
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS).kind == "accepted"


@pytest.mark.parametrize("text", [
    "Ok,\nI installed 2.1 but the printer still does not work.",
    "Yes.\nBut now it crashes on startup with error 0x80004005.",
    "Yes\nThanks\nStill Broken", "Yes, thanks!\nP.S. Can you look at my invoice?", "Ok\nThanks,\nReopen Please",
    "Yes\nthe tray jams", "Yes\nIt Broke Again",
])
def test_words_under_an_accept_word_reject_the_proposal_with_them_as_the_reason(text):
    """PRODUCT.md: any other reply rejects it and its text is the reason. "ok but it still fails" is a
    rejection on one line; a line break after "Ok," closed the ticket as accepted and asked for a rating."""
    assert not is_acceptance(text, WORDS)
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS).kind == "rejected"


@pytest.mark.parametrize("text", [
    "Yes, that solved it – thank you!\n\nThe toner order for Jürgen is attached as a spreadsheet.",
    "Ok, it works now.\nI will tell the others on the third floor.\nDana",
    "Yes\n\nThank you for your help, everything works now!",
    "accept\nWe will order the new toner next week.",
])
def test_an_accept_word_over_other_news_accepts(text):
    """PRODUCT.md: a reply whose first line is an accept word closes the ticket. Lines under it that name no
    trouble left ("The toner order is attached") keep it so; a signed S/MIME answer saying so was rejected."""
    assert is_acceptance(text, WORDS)
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS).kind == "accepted"


@pytest.mark.parametrize("text, rating", [
    ("Yes, thanks!\n5 5 4\n\nDana", (5, 5, 4)), ("Yes\n5 5 5", (5, 5, 5)),
    ("Hi Bob,\nyes it works\nRating: 4 5 5\nThanks, Dana", (4, 5, 5)),
    ("ok\n\n5 4 5\n\n> How did we do?", (5, 4, 5)),
    ("yes", None), ("Yes\n10 10 10", None),                  # off the scale: the closing mail asks
    ("Yes, it works.\n5 5 4\nThe toner order is attached.", None),   # more than a rating under it
])
def test_a_rating_may_come_with_the_acceptance(text, rating):
    effect = customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS)
    assert (effect.kind, effect.rating) == ("accepted", rating)
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, "Yes\n5 5 5\nbut it broke again", WORDS).kind == \
        "rejected"


@pytest.mark.parametrize("text", [
    "Yes, it works.\nBut only on the first tray.", "Yes, that solved it.\nThe scanner jams though.",
    "Ok, works now.\nWhy does it need a restart every day", "Yes, it works\nThe printer doesn't print colour.",
    "Yes, fixed.\nThe same error shows on the other laptop.",
])
def test_an_accept_word_over_a_trouble_left_rejects(text):
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS).kind == "rejected"


@pytest.mark.parametrize("text", ["Ok.\nThe issue came back this morning, please reopen.",
                                  "Yes\nIt stopped working again after the reboot."])
def test_an_accept_word_over_what_is_wrong_again_reopens_a_closed_ticket(text):
    """PRODUCT.md: a reply to a closed ticket reopens it unless it is only a rating; the first line's "Ok."
    kept it closed, the request to reopen filed away."""
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert (effect.kind, effect.to_status) == ("reopened", Status.OPEN)


@pytest.mark.parametrize("text", [
    "> Does this solve your problem?\n\nYes",
    "Alice wrote:\n> Please update the printer driver to 2.1, that fixes it.\n\nYes, thanks!",
    "On Mon, 3 Jun 2024 at 10:02, Support <support@example.com> wrote:\n> Restart the printer.\nok",
    "> Restart the printer.\nYes, it works now.\n> Anything else?\nThanks, Dana",
])
def test_quoted_lines_and_their_attribution_are_not_the_answer(text):
    """Inline and bottom-posted replies keep the quotes between the answers for the agent to read: the
    quoted question was read as the first line and the "Yes" under it as a rejection."""
    assert is_acceptance(text, WORDS)
    assert customer_reply_effect(Status.SOLUTION_PROPOSED, text, WORDS).kind == "accepted"


@pytest.mark.parametrize("text", ["It still fails with this error:\n> Error 0x80004005\nYes",
                                  "> Does this solve your problem?\n\nNo", "> yes\n\nstill broken"])
def test_a_quote_leaves_the_writers_own_words_to_decide(text):
    """A line of their own over a quote ("with this error:") is no attribution: it stays the answer."""
    assert not is_acceptance(text, WORDS)


def test_the_answer_line_is_the_one_that_accepts():
    assert answer_line("> Does this solve your problem?\n\nYes", WORDS) == "Yes"
    assert answer_line("Alice wrote:\n> Restart it.\nBob,\nyes it works\nDana", WORDS) == "yes it works"


@pytest.mark.parametrize("text", [
    "> How did we do? Reply with three numbers from 1 (poor) to 5 (excellent):\n"
    "> usefulness, speed and politeness. For example:\n\n5 5 4",
    "Support wrote:\n> How did we do?\n5 5 4\nThanks, Anna",
])
def test_a_rating_under_the_quoted_request_is_only_a_rating(text):
    assert parse_rating(text) == (5, 5, 4)
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert (effect.kind, effect.rating) == ("rated", (5, 5, 4))


def test_quoted_questions_over_thanks_leave_a_closed_ticket_closed():
    effect = customer_reply_effect(Status.CLOSED, "> How did we do?\n\nThank you!", WORDS)
    assert effect.kind == "none" and "only thanks" in effect.unchanged_because


# ---------------------------------------------------------------- everyday acceptances

@pytest.mark.parametrize("text", [
    "Yes, please close it", "Yes, it worked", "Yes, it's fixed", "Yes, it\u2019s fixed", "Yes, all good now",
    "yes, this works", "Yes please", "Yes, that works for me", "Bob,\nyes it works", "Anna Smith,\nOK, thanks",
    "Да, спасибо большое!", "Ок, спасибо большое", "Да, спасибо огромное", "Согласна", "Принято", "De acuerdo",
    "Sí, todo bien", "Sí, funciona perfectamente", "是的，问题解决了", "\u200bYes, thanks!", "Yes\u200b",
    "\ufeffOK", "Please close it, thanks",
])
def test_everyday_acceptances(text):
    """Each was read as a rejection: the ticket went back to open while the customer thought it settled."""
    assert is_acceptance(text, WORDS)


@pytest.mark.parametrize("text", [
    "Yes, it no longer works", "Yes, not fixed", "Yes, it is not fixed", "Да, не работает", "Да, но не работает",
    "Sí, no funciona", "Sí, pero no funciona", "是的，问题没有解决", "Yes, please reopen", "Yes please, but still",
    "Bob,\nit still fails", "Ok,\nstill broken", "Yes, that works for me but not for Pat",
    "Принято, но не работает", "De acuerdo, pero sigue fallando", "Yes\u200b but no",
    # A word or two under the accept word, capitalised like a name, that say what is wrong.
    "Ok\nDoesn't Work", "Ok\nNope", "Ok\nSame Problem", "Yes\nHelp", "Yes\nThanks\nIt Fails",
    "Yes\nThanks\nRefund Me", "Ok\nThanks\nCancel Subscription", "Hi Bob,\nok\nWait",
])
def test_a_negation_or_a_problem_keeps_it_a_rejection(text):
    assert not is_acceptance(text, WORDS)


@pytest.mark.parametrize("text, accepts", [
    ("> Does this solve your problem?\n\nYes", True), ("> Does it work now?\n\nYes, thanks", True),
    ("> Please update to 2.1 and tell us: is the printer still jamming?\nYes", False),
    ("> Does the error appear again?\n\nyes", False), ("> Don't you see the menu?\nOk", False),
    ("> 还有问题吗？\n是的", False),
])
def test_a_yes_under_a_quoted_question_whether_the_trouble_goes_on_is_no_acceptance(text, accepts):
    """Quoted lines are no answer, but the question a "yes" stands under says what it means."""
    assert is_acceptance(text, WORDS) is accepts


# ---------------------------------------------------------------- ratings in everyday shapes

@pytest.mark.parametrize("text, rating", [
    ("5 5 4 😊", (5, 5, 4)), ("5 5 4 👍🏽", (5, 5, 4)), ("Rating: 5 5 4", (5, 5, 4)), ("My rating - 4 5 5", (4, 5, 5)),
    ("Rating:\n5 5 4\nThanks!", (5, 5, 4)), ("Оценка: 5 5 5", (5, 5, 5)),
    ("Usefulness - 5\nSpeed - 5\nPoliteness - 4", (5, 5, 4)), ("Speed – 3, Usefulness – 5, Politeness – 4", (5, 3, 4)),
    ("5, 5 and 4", (5, 5, 4)), ("5 and 5 and 4", (5, 5, 4)), ("5, 5 y 4", (5, 5, 4)), ("5, 5 и 4", (5, 5, 4)),
    ("usefulness 5, speed 5 and politeness 4", (5, 5, 4)),
    ("5 and 4", None), ("5 5 and", None), ("5 5 and 4 and 3", None), ("Rating: 5 5 4 but slow", None),
])
def test_ratings_in_everyday_shapes(text, rating):
    """Each reopened the closed ticket and lost the rating."""
    assert parse_rating(text) == rating
    assert customer_reply_effect(Status.CLOSED, text, WORDS).kind == ("rated" if rating else "reopened")


@pytest.mark.parametrize(("text", "read"), [("usefulness: 5", (5,)), ("Speed = 4, politeness: 5", (4, 5)),
                                            ("Hi,\nusefulness - 5\nThanks,\nAnna", (5,))])
def test_a_rating_begun_with_labels_is_not_counted_and_the_requester_asked_again(text, read):
    """A lone labelled number is a rating attempt, as "10 10 10" is: it reopened the ticket."""
    assert parse_rating(text) is None and misread_rating(text) == read
    effect = customer_reply_effect(Status.CLOSED, text, WORDS)
    assert (effect.kind, effect.rating, effect.ask_again) == ("none", read, True)


@pytest.mark.parametrize("text", ["5", "Rating: 5", "speed: 5 5", "speed: 5, speed: 4", "usefulness: 5 it broke"])
def test_numbers_without_a_label_each_are_no_rating_begun(text):
    assert misread_rating(text) is None
    assert customer_reply_effect(Status.CLOSED, text, WORDS).kind == "reopened"


# Hostile text for the readers above: quotes, attributions, lines under an answer, separators with "and".
@pytest.mark.parametrize("text", [
    "5 5 " + "and " * 10_000 + "x", "5 5" + " , " * 7_000 + "and x", "Rating:" + " " * 20_000 + "x",
    "usefulness" + " -" * 10_000 + "x", "5" + " " * 20_000 + "x", "> q\n" * 5_000 + "yes",
    "yes\n" + "Thanks, Anna\n" * 2_000, "yes\n" + "x wrote 1:00:\n> q\n" * 2_000,
    "Yes " + "\u200b" * 20_000, "Bob,\n" + "yes, " * 4_000, "5 5 4 " + "😊" * 10_000,
    "Still broken\n" + "x\n--\n" * 6_000, "> is it still " + "still " * 4_000 + "?\nyes",
], ids=["and again and again", "commas then and", "spaces after a rating label", "dashes after a label",
        "spaces after a number", "quoted lines", "lines of thanks", "attributions", "zero-width spaces",
        "yes again and again", "emoji", "lines of --", "a long quoted question"])
@pytest.mark.parametrize("status", [Status.CLOSED, Status.SOLUTION_PROPOSED])
def test_hostile_replies_are_read_in_linear_time(text, status):
    started = time.perf_counter()
    customer_reply_effect(status, text, WORDS)
    misread_rating(text)
    assert time.perf_counter() - started < 5
