"""`ticketd quarantine retry` while `ticketd run` runs: what the re-driven mail queued goes out at once."""

from __future__ import annotations

import json
import smtplib

from tests.cli import cli_ok, run_cli
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import wait_until
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_quarantine_retry import _nested


def _quarantined(config) -> list[dict]:
    return json.loads(cli_ok(config, "quarantine", "list", "--json"))


def test_the_acknowledgement_of_a_retried_mail_goes_without_waiting_for_the_sweep(tmp_path, sqlite_url, sink):
    # A sweep every ten minutes: only a wake-up can send the acknowledgement within the test.
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=NO_AGENTS, smtp_port=port,
                          extra=outbound_yaml(sink.port) + "sweep_seconds: 600\nmax_mime_depth: 3\n")
    daemon = DaemonProcess(config).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("cust@example.org", ["support@example.com"], _nested(5, "Scanner jams", "<jam@x>"))
        [held] = wait_until(lambda: _quarantined(config), timeout=20)
        # The daemon keeps the limit it started with; the command reads the one raised since.
        config.write_text(config.read_text().replace("max_mime_depth: 3", "max_mime_depth: 20"))

        said = run_cli(config, "quarantine", "retry", str(held["id"]))
        assert said.returncode == 0, said.stderr
        assert said.stdout == f"mail {held['id']} processed: ticket 1 (new)\n"
        [ack] = sink.wait_for(1, timeout=15)
        assert ack.rcpt_tos == ["cust@example.org"]
        assert "[#1]" in ack.message["Subject"]
        assert daemon.proc.poll() is None
    finally:
        assert daemon.terminate() == 0
