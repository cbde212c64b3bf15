"""Lifecycle decisions, table-driven over every status and the words customers write (pure)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from ticketd.domain.lifecycle import (
    agent_may_set,
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


@pytest.mark.parametrize("text", ["yes", "it still fails", "Adding George from IT.", "5 4 5"])
def test_only_the_requester_accepts_or_rejects(text):
    """PRODUCT.md: "Only the customer accepts a proposed solution"; a follower's reply leaves it standing."""
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
