"""`outbound.starttls: true` and the smarthost cannot give TLS: nothing sent in clear, mail retried, one error said.

A smarthost that stops offering STARTTLS (a configuration change), or
whose handshake fails, refuses every mail the same way: the admin reads it
once per outage as an error, not once per mail among the deferrals.
"""

from __future__ import annotations

import logging

import pytest

from tests.outbound_burst import capture_jobs, deliver_all, queue_burst
from tests.sink import outbox_rows
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbound_recipient_answers import STANDARD, ScriptedSmarthost

NO_STARTTLS = ("250-mx.example.net", "250 8BITMIME")
WITH_STARTTLS = ("250-mx.example.net", "250-STARTTLS", "250 8BITMIME")


def _errors(caplog, port: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and f"127.0.0.1:{port}" in r.getMessage()]


@pytest.mark.parametrize("fault", ["not offered", "handshake fails"])
def test_no_tls_no_mail_in_clear_each_retried_and_one_error(make_app, sqlite_url, caplog, fault):
    # "handshake fails": 220 to STARTTLS, then the connection closes instead of the TLS handshake.
    server = ScriptedSmarthost(lambda n, mail, verb, line: None if verb == "STARTTLS"
                               else STANDARD.get(verb, "250 2.0.0 ok"),
                               ehlo=NO_STARTTLS if fault == "not offered" else WITH_STARTTLS)
    if fault == "handshake fails":
        server.answer = lambda n, mail, verb, line: "220 2.0.0 go ahead" if verb == "STARTTLS" else None
    app = make_app(sqlite_url, outbound_port=server.port, rules=NO_AGENTS,
                   extra=(outbound_yaml(server.port, retry_base=30, timeout=2, max_attempts=3)
                          .replace("}\n", ", starttls: true}\n")))
    jobs = capture_jobs(app)
    try:
        queue_burst(app, jobs, 4)
        deliver_all(app, jobs)
        rows = outbox_rows(app)
        assert len(rows) == 5 and {(r["state"], r["attempts"]) for r in rows} == {("pending", 1)}
        assert server.connections == 5
        assert not [line for _, line in server.commands if line.upper().startswith(("MAIL", "AUTH"))]
        [said] = _errors(caplog, server.port)
        assert "TLS" in said
    finally:
        server.stop()
