"""`ticketd templates check`: an admin's broken override or saved reply is named before mail needs it."""

from __future__ import annotations

from outbound.render import DEFAULT_TEMPLATES as TEMPLATES
from tests.cli import run_cli
from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.sink import wait_until

# Every <audience>/<event>.txt.j2 shipped, counted, so a new template needs no change here.
SHIPPED = len(list(TEMPLATES.glob("*/*.txt.j2")))


def test_the_shipped_templates_render(tmp_path, sqlite_url):
    config = write_config(tmp_path, sqlite_url)
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0, done.stderr
    assert f"the shipped templates: OK: {SHIPPED} templates and 1 saved replies render" in done.stdout


def test_a_broken_override_and_saved_reply_are_named_and_exit_1(tmp_path, sqlite_url):
    overrides = tmp_path / "overrides"
    (overrides / "agent").mkdir(parents=True)
    (overrides / "canned").mkdir()
    (overrides / "agent" / "customer_replied.txt.j2").write_text("{{ ticket.requester }} wrote: {{ txt }}\n")
    (overrides / "canned" / "thanks.txt").write_text("Thanks, {{ ticket.requester_nme }}!\n")
    (overrides / "canned" / "fine.txt").write_text("Regards, {{ agent_name }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 1
    assert "template agent/customer_replied failed to render: 'txt' is undefined" in done.stderr
    assert "saved reply thanks failed to render" in done.stderr and "requester_nme" in done.stderr
    assert "saved reply fine" not in done.stderr
    assert f"templates_dir {overrides}: 2 error(s)" in done.stderr

    (overrides / "agent" / "customer_replied.txt.j2").write_text("{{ ticket.requester }} wrote: {{ text }}\n")
    (overrides / "canned" / "thanks.txt").write_text("Thanks, {{ ticket.requester_name }}!\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0 and f"OK: {SHIPPED} templates and 3 saved replies render" in done.stdout


def test_the_daemon_names_a_broken_override_when_it_starts(tmp_path, sqlite_url):
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.subject.j2").write_text("Re: {{ ticket.subjet }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {tmp_path / 'overrides'}\n")
    daemon = DaemonProcess(config).start()
    try:
        wait_until(lambda: "template requester/ticket_opened failed to render" in daemon.output())
        assert "mail that needs it will be quarantined" in daemon.output()
    finally:
        assert daemon.terminate() == 0
        daemon.stop()
