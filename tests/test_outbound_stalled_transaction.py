"""A smarthost that greets, then stops answering inside the mail transaction, holds sends as a silent one does.

Each send to it waited outbound.timeout_seconds for the reply to MAIL or
RCPT (RFC 5321 section 4.5.3.2); a burst of mail kept a worker thread
waiting per mail. A timeout after the greeting holds sends as one before
it does: nothing of the mail was taken before the final dot, so it waits
its retry. After the final dot the mail may have been taken: that reply
keeps its own longer wait, and the mail is not sent again meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from outbound.send import DATA_END_TIMEOUTS, RETRY, SENT, send_raw
from tests.outbound_burst import assert_burst_waits_its_retries
from tests.sink import customer_mail
from tests.test_outbound_recipient_answers import ScriptedSmarthost, usual_answer
from ticketd.settings import OutboundSettings

TIMEOUT = 0.5
RAW = customer_mail(sender="support@example.com").as_bytes()


class Stalling:
    """Answers as a smarthost does, except that `verb` gets no answer until `stalled` is cleared."""

    def __init__(self, verb: str) -> None:
        self.verb, self.stalled, self.released = verb, True, threading.Event()

    def __call__(self, connection: int, mail: int, verb: str, line: str) -> str | None:
        if verb == self.verb and self.stalled:
            self.released.wait(30)
            return None
        return usual_answer(verb)


def _lines(caplog, port: int, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and f"127.0.0.1:{port}" in r.getMessage() and words in r.getMessage()]


@pytest.mark.parametrize("verb", ["MAIL", "RCPT"])
def test_a_timeout_inside_the_transaction_holds_the_sends_said_once(caplog, verb):
    answer = Stalling(verb)
    server = ScriptedSmarthost(answer)
    settings = OutboundSettings(host="127.0.0.1", port=server.port, timeout_seconds=TIMEOUT)
    try:
        started = time.monotonic()
        results = [send_raw(settings, "support@example.com", f"c{n}@example.org", RAW) for n in range(8)]
        assert [r.outcome for r in results] == [RETRY] * 8
        assert server.connections == 1 and time.monotonic() - started < 4 * TIMEOUT   # 8 x TIMEOUT unheld
        assert len([line for _, line in server.commands if line.upper().startswith(verb)]) == 1
        [said] = _lines(caplog, server.port, "are held")

        # The hold ends: one send looks again. Still stalled: held again, not said again.
        time.sleep(2.5 * TIMEOUT)
        assert send_raw(settings, "support@example.com", "look@example.org", RAW).outcome == RETRY
        assert server.connections == 2 and _lines(caplog, server.port, "are held") == [said]
        assert not _lines(caplog, server.port, "answers again")

        # It answers again: the next look sends, and the end of the hold is said once.
        answer.stalled = False
        answer.released.set()
        time.sleep(2.5 * TIMEOUT)
        assert [send_raw(settings, "support@example.com", f"d{n}@example.org", RAW).outcome
                for n in range(2)] == [SENT] * 2
        assert len(_lines(caplog, server.port, "answers again")) == 1
        assert len(_lines(caplog, server.port, "are held")) == 1
    finally:
        answer.released.set()
        server.stop()


def test_no_answer_to_the_final_dot_waits_its_longer_wait_then_holds_and_is_not_sent_again(caplog):
    answer = Stalling("DOT")
    server = ScriptedSmarthost(answer)
    settings = OutboundSettings(host="127.0.0.1", port=server.port, timeout_seconds=TIMEOUT)
    try:
        started = time.monotonic()
        first = send_raw(settings, "support@example.com", "c0@example.org", RAW)
        assert first.outcome == RETRY and time.monotonic() - started >= DATA_END_TIMEOUTS * TIMEOUT * 0.9
        started = time.monotonic()
        rest = [send_raw(settings, "support@example.com", f"c{n}@example.org", RAW) for n in range(1, 6)]
        assert [r.outcome for r in rest] == [RETRY] * 5 and time.monotonic() - started < TIMEOUT
        assert server.connections == 1
        assert [line for _, line in server.commands].count("DOT") == 1
        assert len(_lines(caplog, server.port, "are held")) == 1
    finally:
        answer.released.set()
        server.stop()


def test_a_burst_of_mail_to_a_smarthost_stalled_at_rcpt_waits_its_retries(make_app, sqlite_url):
    answer = Stalling("RCPT")
    server = ScriptedSmarthost(answer)
    try:
        assert_burst_waits_its_retries(make_app, sqlite_url, server, TIMEOUT)
    finally:
        answer.released.set()
        server.stop()
