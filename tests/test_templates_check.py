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
    assert (f"template agent/customer_replied failed to render: {overrides / 'agent' / 'customer_replied.txt.j2'} "
            "line 1: 'txt' is undefined") in done.stderr
    assert f"saved reply thanks failed to render: {overrides / 'canned' / 'thanks.txt'} line 1: " in done.stderr
    assert "requester_nme" in done.stderr
    assert "saved reply fine" not in done.stderr
    assert f"templates_dir {overrides}: 2 error(s)" in done.stderr

    (overrides / "agent" / "customer_replied.txt.j2").write_text("{{ ticket.requester }} wrote: {{ text }}\n")
    (overrides / "canned" / "thanks.txt").write_text("Thanks, {{ ticket.requester_name }}!\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0 and f"OK: {SHIPPED} templates and 3 saved replies render" in done.stdout


def test_an_override_that_needs_an_optional_variable_or_uses_the_time_zone_is_checked_as_mail_sends_it(
        tmp_path, sqlite_url):
    """A reply without files has no `attachments`: an override reading it bare quarantined every such mail while
    the check said OK; and `timezone`, which every mail gets, was refused by the check and so by the daemon."""
    overrides = tmp_path / "overrides"
    (overrides / "agent").mkdir(parents=True)
    (overrides / "requester").mkdir()
    replied = overrides / "agent" / "customer_replied.txt.j2"
    replied.write_text("{{ sender }} wrote ({{ attachments | length }} files):\n{{ text }}\n")
    (overrides / "requester" / "ticket_opened.txt.j2").write_text("Opened {{ ticket.created_at | when }} "
                                                                  "({{ timezone }}).\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 1
    [error] = [line for line in done.stderr.splitlines() if "failed to render" in line]
    assert error.startswith(f"template agent/customer_replied failed to render: {replied} line 1: "
                            "'attachments' is undefined (optional: attachments may be absent"), error
    assert f"templates_dir {overrides}: 1 error(s)" in done.stderr

    replied.write_text("{{ sender }} wrote{% if attachments is defined and attachments %} "
                       "({{ attachments | length }} files){% endif %}:\n{{ text }}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0 and f"OK: {SHIPPED} templates" in done.stdout, done.stderr


def test_an_override_saved_in_another_charset_is_named_not_a_traceback(tmp_path, sqlite_url):
    """jinja2 reads templates as UTF-8: a Latin-1 file gave a traceback here and at start, and quarantined mail
    with a reason that named no file."""
    overrides = tmp_path / "overrides"
    (overrides / "requester").mkdir(parents=True)
    (overrides / "canned").mkdir()
    opened = overrides / "requester" / "ticket_opened.txt.j2"
    opened.write_bytes("Viele Grüße, Ihr Support-Team {{ tag }}\n".encode("latin-1"))
    (overrides / "canned" / "danke.txt").write_bytes("Grüße\n".encode("latin-1"))
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (f"template requester/ticket_opened failed to render: {opened} is not UTF-8 (byte 0xfc at offset 8): "
            "save it as UTF-8") in done.stderr
    assert f"saved reply danke failed to render: {overrides / 'canned' / 'danke.txt'} is not UTF-8" in done.stderr


def test_an_override_nested_past_jinjas_recursion_is_named_not_a_traceback(tmp_path, sqlite_url):
    """jinja2 parses by recursing once per level: 3 000 nested brackets gave a traceback here and at start."""
    overrides = tmp_path / "overrides"
    (overrides / "requester").mkdir(parents=True)
    (overrides / "canned").mkdir()
    deep = "{{ " + "(" * 3000 + "tag" + ")" * 3000 + " }}\n"
    (overrides / "requester" / "ticket_opened.txt.j2").write_text(deep)
    (overrides / "canned" / "deep.txt").write_text(deep)
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    for what in ("template requester/ticket_opened", "saved reply deep"):
        assert f"{what} failed to render: nested too deep to read" in done.stderr, done.stderr


def test_templates_overridden_in_part_are_listed_with_what_is_sent(tmp_path, sqlite_url):
    overrides = tmp_path / "overrides"
    for name in ("requester/ticket_opened.txt.j2", "requester/ticket_opened.subject.j2",
                 "agent/ticket_assigned.html.j2", "_parts/conversation.txt",
                 "agent/internal_note.txt.j2", "agent/internal_note.html.j2", "agent/internal_note.subject.j2",
                 "agent/customer_replied.txt.j2", "agent/customer_replied.html.j2"):
        (overrides / name).parent.mkdir(parents=True, exist_ok=True)
        (overrides / name).write_text("{{ tag }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert ("requester/ticket_opened: overridden in part (templates_dir has .subject.j2 and .txt.j2, not .html.j2): "
            "sent as plain text only, from your .txt.j2 (no HTML part: the shipped .html.j2 is not used), "
            "with your subject") in lines
    assert ("agent/ticket_assigned: overridden in part (templates_dir has .html.j2, not .subject.j2 or .txt.j2): "
            "sent as your .html.j2 and a plain-text part made from it (the shipped .txt.j2 is not used), "
            "with the shipped subject") in lines
    assert ("agent/customer_replied: overridden in part (templates_dir has .txt.j2 and .html.j2, not .subject.j2): "
            "sent as your text and HTML, with the shipped subject") in lines
    assert any(line.startswith("_parts/conversation.txt: overridden without _parts/conversation.html")
               for line in lines)
    assert not any("internal_note" in line for line in lines)   # overridden whole
    assert f"OK: {SHIPPED} templates" in lines[-1]


def test_an_override_of_no_template_is_named_with_the_likely_one(tmp_path, sqlite_url):
    """A misspelt file name was never used, and nothing said so: the shipped template went out instead."""
    overrides = tmp_path / "overrides"
    for name in ("requester/ticket_open.txt.j2", "agent/unknown_thing.html.j2", "canned/new-reply.txt",
                 "requester/ticket_opened.txt.j2", ".git/config"):
        (overrides / name).parent.mkdir(parents=True, exist_ok=True)
        (overrides / name).write_text("{{ tag }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 0, done.stderr   # a stray file breaks no mail: said, not refused
    lines = done.stdout.splitlines()
    assert ("requester/ticket_open.txt.j2: overrides no shipped template, so no mail uses it; did you mean "
            "requester/ticket_opened.txt.j2?") in lines
    assert any(line.startswith("agent/unknown_thing.html.j2: overrides no shipped template") for line in lines)
    assert not any("new-reply" in line or ".git" in line for line in lines)   # a saved reply is a new name


def test_a_templates_dir_that_is_not_there_is_an_error(tmp_path, sqlite_url):
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {tmp_path / 'overides'}\n")
    done = run_cli(config, "templates", "check")
    assert done.returncode == 1
    assert f"templates_dir {tmp_path / 'overides'} is not a directory" in done.stderr
    refused = run_cli(config, "run")
    assert refused.returncode == 1 and f"templates_dir {tmp_path / 'overides'} is not a directory" in refused.stderr


def test_the_daemon_refuses_a_broken_override_and_starts_once_it_is_fixed(tmp_path, sqlite_url):
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.subject.j2").write_text("Re: {{ ticket.subjet }}\n")
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {tmp_path / 'overrides'}\n")
    done = run_cli(config, "run")
    assert done.returncode == 1
    assert (f"template requester/ticket_opened failed to render: {overrides / 'ticket_opened.subject.j2'} line 1: "
            "'dict object' has no attribute 'subjet'") in done.stderr

    (overrides / "ticket_opened.subject.j2").write_text("Re: {{ ticket.subject }}\n")
    daemon = DaemonProcess(config).start()
    try:
        wait_until(lambda: "ticketd running" in daemon.output())
        assert "failed to render" not in daemon.output()
    finally:
        assert daemon.terminate() == 0
        daemon.stop()
