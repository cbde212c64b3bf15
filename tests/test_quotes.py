"""Reply stripping against the public reply corpora (floors under the measured shares) and exact cases."""

from __future__ import annotations

import pytest

from bench.quotes import TALON, discourse_cases, score, talon_cases, talon_html_cases
from ingest.html_text import html_to_text
from ingest.quotes import _LANGUAGES, _library, strip_reply
from mailparser_reply import EmailReplyParser

# Measured with `.venv/bin/python -m bench.quotes` (bench/README.md, "Reply
# stripping"): discourse 63/64, talon 10/12, talon-html 9/9. Each floor is one
# case under that, so any regression beyond one case fails.


def test_discourse_share():
    good, total, failed = score(discourse_cases())
    assert total == 64
    assert good >= 62, failed


def test_talon_standard_replies_share():
    good, total, failed = score(talon_cases())
    assert total == 12
    assert good >= 9, failed


def test_talon_html_replies_share():
    good, total, failed = score(talon_html_cases(), squash=True)
    assert total == 9
    assert good >= 8, failed


def test_our_use_of_mail_parser_reply_finds_what_the_library_finds():
    # ingest.quotes compiles the library's header patterns once behind a
    # line-start guard; on every corpus reply the cut must be the library's.
    library = EmailReplyParser(languages=list(_LANGUAGES))
    texts = [text for cases in (discourse_cases(), talon_cases(), talon_html_cases()) for _, text, _ in cases]
    assert len(texts) == 85
    differing = [text[:60] for text in texts if _library().reply(text) != (library.parse_reply(text) or "")]
    assert not differing
    assert _library().reply("Yes.\n\nOn Mon, 3 Mar 2025 at 09:12, Bob <b@example.com> wrote:\n> old") == "Yes."


def test_talon_replies_we_strip_further_on_purpose():
    # talon keeps signatures; PRODUCT.md wants the reply without its signature.
    cases = {name: text for name, text, _ in talon_cases()}
    assert strip_reply(cases["iphone"]) == "Hello"       # talon: "Hello\n\nSent from my iPhone"
    assert strip_reply(cases["sparrow"]) == "Hello"      # talon: "Hello \n\n-- \nxxx\nSent with Sparrow …"


def test_talon_html_single_cases():
    assert strip_reply(html_to_text((TALON / "OLK_SRC_BODY_SECTION.html").read_text())) == "Reply"
    assert strip_reply(html_to_text((TALON / "reply-separated-by-hr.html").read_text())).startswith("Hi\nthere")
    shared = strip_reply((TALON / "reply-quotations-share-block.eml").read_bytes().decode("utf-8", "replace"))
    assert shared and "From" not in shared


@pytest.mark.parametrize("text, expected", [
    ("Now it is smoking.\n\nOn Mon, Customer wrote:\n> It is on fire.\n", "Now it is smoking."),
    ("Thanks!\n\nOn Tue, 3 Jan 2023 at 10:00, Support <support@example.com> wrote:\n> Hello\n", "Thanks!"),
    # an attribution wrapped over three lines, French spacing before the colon
    ("C'est super !\nLe 4 janv. 2016 19:03, \"Neil\"\n<info@example.org>\na écrit :\n> bla\n", "C'est super !"),
    ("Passt.\n\nAm 21.04.2016 17:48 schrieb \"Einz Zwei\" <noreply@example.org\n>:\n> alt\n", "Passt."),
    ("Works now.\n\n________________________________\nFrom: Support <support@example.com>\nSent: Monday\n"
     "To: Bob\nSubject: Re: [#12] broken\n\nold text\n", "Works now."),
    ("Ok.\n\nVon: Support <support@example.com>\nGesendet: Montag\nAn: Bob\nBetreff: kaputt\n\nalt\n", "Ok."),
    ("See below.\n\n---------- Forwarded message ---------\nFrom: A <a@example.com>\n\nbody\n", "See below."),
    ("#status open\nFixed it.\n\n-- \nAlice\nSupport team\n", "#status open\nFixed it."),
    ("Done.\n\nSent from my iPhone\n", "Done."),
    # bottom-posting: the reply is under the quote
    ("On Mon, 19 Aug 2013 at 2:36 AM, Bob <bob@example.com> wrote:\n\n> old\n\nnew answer\n", "new answer"),
    # a bare forward: the forwarded text is the content
    ("---------- Forwarded message ----------\nFrom: A <a@example.com>\nSubject: x\n\nForwarded body.\n",
     "Forwarded body."),
])
def test_exact_cases(text, expected):
    assert strip_reply(text) == expected


@pytest.mark.parametrize("text", [
    "Nouveau message :\n\n=============================\nNom: Orberer\nEmail: x@example.com\n",  # a form
    "Error log:\n2024-05-01 12:00:01 disk full\n2024-05-01 12:00:02 retry\n",                 # log lines
    "On Monday he wrote: nothing useful.\nThanks",
    "Sent with the courier yesterday.\nPlease confirm receipt when it arrives: we need it by Monday for the customer.",
    "```\n####\ncode\n```\nafter the code",
    "Formatting and\n\n    - Item #1\n    - Item #2",
])
def test_text_that_is_not_a_quote_is_kept_whole(text):
    assert strip_reply(text) == text.strip()


def test_only_a_quote_keeps_everything():
    assert strip_reply("> Email with only quote.\n") == "> Email with only quote."
    assert strip_reply("") == "" and strip_reply(" \n ") == ""


def test_crlf_input():
    assert strip_reply("Yes.\r\n\r\nOn Mon, 1 Jan 2024, Bob <b@example.com> wrote:\r\n> q\r\n") == "Yes."
