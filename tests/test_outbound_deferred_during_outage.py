"""While an outage of the smarthost was said once, the mails it defers are not each said again as warnings.

Sends held after a silent smarthost, or no TLS where outbound.starttls asks
for it: one line says the outage, and each mail's "deferred" line beside it
repeated it per mail. The first mail's line stays a warning; the others,
covered by the line already said, are debug lines.
"""

from __future__ import annotations

import logging

import pytest

from tests.outbound_burst import capture_jobs, deliver_all, queue_burst
from tests.sink import outbox_rows
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbound_recipient_answers import ScriptedSmarthost

TIMEOUT = 0.5


def _deferred(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "ticketd.outbound" and r.levelno == level and " deferred " in r.getMessage()]


@pytest.mark.parametrize("outage", ["silent smarthost", "no STARTTLS"])
def test_one_deferred_warning_per_outage_the_rest_debug(make_app, sqlite_url, caplog, outage):
    caplog.set_level(logging.DEBUG, logger="ticketd.outbound")
    if outage == "silent smarthost":
        server, tls = ScriptedSmarthost(banner=None), ""
    else:
        server, tls = ScriptedSmarthost(ehlo=("250-mx.example.net", "250 8BITMIME")), ", starttls: true"
    app = make_app(sqlite_url, outbound_port=server.port, rules=NO_AGENTS,
                   extra=outbound_yaml(server.port, retry_base=30, timeout=TIMEOUT, max_attempts=3)
                   .replace("}\n", tls + "}\n"))
    jobs = capture_jobs(app)
    try:
        ack = queue_burst(app, jobs, 5)
        deliver_all(app, jobs)
        rows = outbox_rows(app)
        assert len(rows) == 6 and {(r["state"], r["attempts"]) for r in rows} == {("pending", 1)}
        [warned] = _deferred(caplog, logging.WARNING)
        assert f"outbox {ack['id']} " in warned
        assert len(_deferred(caplog, logging.DEBUG)) == 5
    finally:
        server.stop()
