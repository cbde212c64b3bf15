"""Long plain-text replies: quoted history is looked for only near the top, so stripping takes bounded time.

Stripping cost about 12 us per line: a 25 MB reply of blank-line-separated lines held the preparing process for
over a minute. Each timed case runs in a process of its own, so a slow one fails the test instead of hanging it.
"""

from __future__ import annotations

import pytest

from ingest.html_clean import clean_html
from ingest.parse import parse_mail
from ingest.quotes import HEAD_CHARS, HEAD_LINES, own_reply, strip_reply
from tests.bounds import run_alone

MAX_MAIL = 26_214_400   # max_message_bytes

_HEAD = b"From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: help\r\nIn-Reply-To: <x@example.org>\r\n"

_CASES = {
    # name: (what is stripped: "text" or "mail", how it is built, seconds allowed)
    "3 MB of blank-line-separated lines": ("text", lambda: "a\n\n" * 1_000_000, 2.0),
    "3 MB of sentences": ("text", lambda: "I wrote to you before, on 3 May: no answer.\n" * 70_000, 2.0),
    "one line of 3 MB": ("text", lambda: "On Monday I wrote " * 170_000, 2.0),
    "mail of max_message_bytes, blank-line-separated lines": (
        "mail", lambda: _HEAD + b"Content-Type: text/plain\r\n\r\n" + b"a\r\n\r\n" * ((MAX_MAIL - 200) // 5), 20.0),
}


def _work(case: str):
    """Strip the case's text, or prepare its mail and strip that (run by tests.bounds in a process of its own)."""
    kind, build, _ = _CASES[case]
    made = build()

    def work() -> dict:
        if kind == "mail":
            parsed = parse_mail(made)
            clean_html(parsed.html)
            text = parsed.text
        else:
            text = made
        reply = own_reply(text)
        return {"kept": len(reply), "text": len(text.strip())}
    return work


@pytest.mark.parametrize("case", list(_CASES))
def test_a_long_reply_is_stripped_in_bounded_time(case):
    limit = _CASES[case][2]
    result = run_alone(__name__, case, timeout=30, doing="stripping")
    assert result["seconds"] < limit, result
    assert result["kept"] == result["text"], result   # nothing quoted in them: all of it is the reply


def _history(lines: int) -> str:
    return "On Mon, 3 May 2021 at 10:00, Bob <bob@example.org> wrote:\n" + "> old text\n" * lines


def test_a_reply_over_long_history_keeps_only_the_reply():
    text = "Thanks, that fixed it.\n\n" + _history(200_000)
    assert own_reply(text) == "Thanks, that fixed it."


def test_a_long_reply_without_history_is_kept_whole():
    lines = [f"line {i} of the log" for i in range(HEAD_LINES * 3)]
    assert own_reply("\n".join(lines) + "\n\n") == "\n".join(lines)


def test_a_reply_longer_than_the_examined_head_keeps_what_follows_it_as_it_is():
    # Past the head nothing is looked for: history there stays, as a mail of no history would.
    own = "x" * 99 + "\n"
    top = own * (HEAD_CHARS // len(own) + 10)
    text = top + "\n" + _history(3)
    assert own_reply(text) == text.rstrip()


def test_an_answer_under_a_quote_longer_than_the_head_is_kept():
    quote = "> question one\n" * (HEAD_LINES * 2)
    assert strip_reply(quote + "\nMy answer is below.\n").endswith("My answer is below.")


def test_answers_between_quotes_that_go_on_past_the_head_are_all_kept():
    answers = "\n".join(f"answer {i}" for i in range(HEAD_LINES * 2))
    text = "See below.\n\n" + _history(HEAD_LINES // 2) + answers + "\n"
    reply = own_reply(text)
    assert reply.startswith("See below.\n\n> old text\n"), reply[:100]
    assert reply.endswith("\n" + answers), reply[-100:]

