"""A smarthost that takes the connection and never says its greeting holds no worker thread for long.

Each send to it waited outbound.timeout_seconds for the banner (RFC 5321
section 4.5.3.2.1); a burst of acknowledgements, one job each, kept both
in-process worker threads waiting in turn, and the assignment jobs that
share them waited behind. After one such timeout the sends to that
smarthost are held a short while: each mail waits its retry at once, the
hold is logged once, and one send looks again when it ends.
"""

from __future__ import annotations

import logging
import threading
import time

from outbound.send import RETRY, SENT, send_raw
from tests.outbound_burst import assert_burst_waits_its_retries
from tests.sink import customer_mail
from tests.test_outbound_recipient_answers import ScriptedSmarthost
from ticketd.settings import OutboundSettings

TIMEOUT = 0.5
RAW = customer_mail(sender="support@example.com").as_bytes()


def _held_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "are held" in r.getMessage() and r.levelno >= logging.WARNING]


def test_after_one_timeout_the_sends_are_held_and_it_is_said_once(caplog):
    server = ScriptedSmarthost(banner=None)
    settings = OutboundSettings(host="127.0.0.1", port=server.port, timeout_seconds=TIMEOUT)
    try:
        started = time.monotonic()
        results = [send_raw(settings, "support@example.com", f"c{n}@example.org", RAW) for n in range(8)]
        took = time.monotonic() - started
        assert [r.outcome for r in results] == [RETRY] * 8
        assert "timed out" in results[0].reply
        assert server.connections == 1 and took < 4 * TIMEOUT    # 8 x TIMEOUT without the hold
        assert all(f"127.0.0.1:{server.port}" in r.reply for r in results[1:])
        [said] = _held_lines(caplog)
        assert f"127.0.0.1:{server.port}" in said

        # Once the hold is over one send looks again, and finds it answering.
        server.banner = "220 mx.example.net ESMTP"
        time.sleep(2.5 * TIMEOUT)
        assert send_raw(settings, "support@example.com", "late@example.org", RAW).outcome == SENT
        assert server.connections == 2
        assert send_raw(settings, "support@example.com", "next@example.org", RAW).outcome == SENT
        assert len(_held_lines(caplog)) == 1
    finally:
        server.stop()


def test_two_worker_threads_wait_out_one_timeout_not_one_each_per_mail(caplog):
    server = ScriptedSmarthost(banner=None)
    settings = OutboundSettings(host="127.0.0.1", port=server.port, timeout_seconds=TIMEOUT)
    outcomes: list[str] = []

    def worker(name: str) -> None:
        for n in range(6):
            outcomes.append(send_raw(settings, "support@example.com", f"{name}{n}@example.org", RAW).outcome)

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert outcomes == [RETRY] * 12
        assert server.connections <= 2 and time.monotonic() - started < 4 * TIMEOUT
        assert len(_held_lines(caplog)) == 1
    finally:
        server.stop()


def test_a_burst_of_mail_to_a_silent_smarthost_waits_its_retries_none_failed(make_app, sqlite_url):
    server = ScriptedSmarthost(banner=None)
    try:
        assert_burst_waits_its_retries(make_app, sqlite_url, server, TIMEOUT)
    finally:
        server.stop()
