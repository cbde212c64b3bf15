"""An override of one body of a template never goes out beside the shipped other one; a broken one is named."""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import timedelta

import pytest

from outbound.render import DEFAULT_TEMPLATES, Renderer, TemplateError
from outbound.template_check import _BASE, SAMPLES
from tests.cli import run_cli
from tests.conftest import MINIMAL_RULES, write_config
from tests.sink import customer_mail, outbox_rows, receive
from ticketd.assignment import sweep_unassigned
from ticketd.clock import utcnow
from ticketd.store import tickets as store
from ticketd.timers import fire_due_timers, on_status_change

SHIPPED_TEXT = "we have received your request and opened ticket"   # in both shipped bodies of ticket_opened
ADMIN_TEXT = "Thanks for writing to Acme, {{ ticket.requester_name }}: we answer within a day. {{ tag }}\n"
ADMIN_HTML = "<p>Thanks for writing to <b>Acme</b>, {{ ticket.requester_name }}: we answer within a day.</p>\n"


def _overrides(tmp_path, files: dict[str, str]):
    root = tmp_path / "overrides"
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return root


def _acknowledgement(make_app, sqlite_url, overrides):
    """The acknowledgement a new ticket gets, as queued for the wire."""
    app = make_app(sqlite_url, extra=f"templates_dir: {overrides}\n")
    receive(app, customer_mail())
    [row] = [r for r in outbox_rows(app) if r["template"] == "requester/ticket_opened"]
    return email.message_from_bytes(bytes(row["raw"]), policy=email.policy.default)


def test_a_text_override_alone_goes_out_as_text_only(make_app, sqlite_url, tmp_path):
    overrides = _overrides(tmp_path, {"requester/ticket_opened.txt.j2": ADMIN_TEXT,
                                      "requester/ticket_opened.subject.j2": "Received: {{ ticket.subject }}\n"})
    msg = _acknowledgement(make_app, sqlite_url, overrides)
    # Not multipart/alternative with the shipped HTML, which HTML mail clients would show instead.
    assert msg.get_content_type() == "text/plain"
    assert "Thanks for writing to Acme, Customer: we answer within a day. [#1]" in msg.get_content()
    assert SHIPPED_TEXT not in msg.as_string()
    assert msg["Subject"] == "[#1] Received: Printer on fire"


def test_an_html_override_alone_gets_a_text_part_made_from_it(make_app, sqlite_url, tmp_path):
    overrides = _overrides(tmp_path, {"requester/ticket_opened.html.j2": ADMIN_HTML})
    msg = _acknowledgement(make_app, sqlite_url, overrides)
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "<b>Acme</b>" in html
    assert "Thanks for writing to Acme, Customer: we answer within a day." in plain and "<b>" not in plain
    assert SHIPPED_TEXT not in plain and SHIPPED_TEXT not in html
    assert msg["Subject"] == "[#1] Printer on fire"


def test_the_shipped_html_overridden_alone_keeps_an_agents_line_breaks_in_the_text_part(tmp_path):
    """An admin who copies a shipped .html.j2 to change a word: the text part made from it kept the agent's
    steps on one line, dropped the signature separator's space and printed reaction links without `mailto:`."""
    shipped = (DEFAULT_TEMPLATES / "requester" / "agent_reply.html.j2").read_text()
    edited = shipped.replace("Was this answer helpful?", "Helped?")
    overrides = _overrides(tmp_path, {"requester/agent_reply.html.j2": edited})
    context = {**_BASE, **SAMPLES["requester/agent_reply"], "text": "Please do this:\n1. Unplug it\n2. Wait"}
    plain = Renderer(overrides).render("requester/agent_reply", context).text
    assert "Please do this:\n1. Unplug it\n2. Wait\n" in plain
    assert "\n-- \n" in plain
    assert "Helped?" in plain and "<mailto:support+like@example.com?subject=" in plain


def test_both_bodies_overridden_or_only_the_subject_keep_text_and_html(tmp_path):
    both = Renderer(_overrides(tmp_path, {"requester/ticket_opened.txt.j2": ADMIN_TEXT,
                                          "requester/ticket_opened.html.j2": ADMIN_HTML,
                                          "agent/internal_note.subject.j2": "Note on {{ tag }}\n"}))
    mine = both.render("requester/ticket_opened", _BASE)
    assert mine.text.startswith("Thanks for writing to Acme") and "<b>Acme</b>" in mine.html
    shipped = both.render("agent/internal_note", {**_BASE, **SAMPLES["agent/internal_note"]})
    assert shipped.subject == "Note on [#1042]"
    assert shipped.html == Renderer().render("agent/internal_note", {**_BASE, **SAMPLES["agent/internal_note"]}).html


def test_an_html_override_added_while_running_never_pairs_with_a_cached_shipped_html(tmp_path):
    # jinja2 keeps the shipped file it loaded while that file is unchanged: the new override is used
    # from the next start, and until then the admin's text still goes out alone.
    overrides = _overrides(tmp_path, {"requester/ticket_opened.txt.j2": ADMIN_TEXT})
    renderer = Renderer(overrides)
    assert renderer.render("requester/ticket_opened", _BASE).html is None
    (overrides / "requester" / "ticket_opened.html.j2").write_text(ADMIN_HTML)
    rendered = renderer.render("requester/ticket_opened", _BASE)
    assert SHIPPED_TEXT not in (rendered.html or "")
    assert rendered.text.startswith("Thanks for writing to Acme")


@pytest.mark.parametrize(("file", "source", "line", "error"), [
    ("agent/ticket_assigned.html.j2", "<p>{{ tag }}</p>\n{% if ticket.subject %}\n<p>{{ ticket.subject }}</p>\n",
     3, "Unexpected end of template"),
    ("agent/ticket_assigned.txt.j2", "{{ tag }}\n\n{{ ticket.subjet }}\n", 3, "has no attribute 'subjet'"),
    ("agent/ticket_assigned.subject.j2", "{{ agent }}", 1, "'agent' is undefined"),
    ("_parts/conversation.html", "<ul>\n{% for m in conversation %}<li>{{ m.txt }}</li>{% endfor %}</ul>\n",
     2, "has no attribute 'txt'"),
])
def test_a_failing_template_is_named_by_its_file_and_line(tmp_path, file, source, line, error):
    overrides = _overrides(tmp_path, {file: source})
    with pytest.raises(TemplateError) as failed:
        Renderer(overrides).render("agent/ticket_assigned", {**_BASE, **SAMPLES["agent/ticket_assigned"]})
    assert f"template agent/ticket_assigned failed to render: {overrides / file} line {line}: " in str(failed.value)
    assert error in str(failed.value)


BROKEN_HTML = "<p>{{ tag }} is yours</p>\n{% if ticket.subject %}\n<p>{{ ticket.subject }}</p>\n"


@pytest.mark.parametrize("command", ["run", "worker"])
def test_run_and_worker_refuse_to_start_with_a_broken_override(tmp_path, sqlite_url, command):
    overrides = _overrides(tmp_path, {"agent/ticket_assigned.html.j2": BROKEN_HTML})
    config = write_config(tmp_path, sqlite_url, extra=f"templates_dir: {overrides}\n")
    done = run_cli(config, command)
    assert done.returncode == 1
    assert f"{overrides / 'agent' / 'ticket_assigned.html.j2'} line 3: Unexpected end of template" in done.stderr
    assert "ticketd running" not in done.stdout and "worker running" not in done.stdout
    assert not (tmp_path / "ticketd.db").exists()   # refused before anything was set up


def test_a_template_broken_while_running_logs_its_traceback_once(make_app, sqlite_url, tmp_path, caplog):
    overrides = _overrides(tmp_path, {})
    app = make_app(sqlite_url, extra=f"templates_dir: {overrides}\n")
    now = utcnow()
    with app.engine.begin() as conn:   # waiting for the sweep, as after a lost job
        for i in range(2):
            store.create_ticket(conn, subject=f"t{i}", status="new", requester=f"c{i}@example.org",
                                group_name="support", created_at=now, updated_at=now)
    _overrides(tmp_path, {"agent/ticket_assigned.html.j2": BROKEN_HTML})   # an edit while the daemon runs
    caplog.set_level(logging.ERROR, logger="ticketd.assignment")
    for _ in range(3):
        assert sweep_unassigned(app, grace_seconds=0) == 0
    failures = [r for r in caplog.records if r.name == "ticketd.assignment"]
    assert len(failures) == 6   # each ticket on each sweep still says it failed ...
    assert len([r for r in failures if r.exc_info]) == 1   # ... with one traceback in all
    assert all("ticket_assigned.html.j2 line 3" in r.getMessage() for r in failures if not r.exc_info)


def test_a_timer_failing_on_a_broken_template_logs_its_traceback_once(make_app, sqlite_url, tmp_path, caplog):
    """The timer stays armed and fails again every sweep: one traceback, then a line per retry."""
    overrides = _overrides(tmp_path, {"agent/timer_breached.html.j2": BROKEN_HTML})
    app = make_app(sqlite_url, extra=f"templates_dir: {overrides}\n",
                   rules=MINIMAL_RULES.replace("open:             {respond_within: 1d, on_breach: reassign}",
                                               "open: {respond_within: 10s, on_breach: notify}"))
    now = utcnow()
    with app.engine.begin() as conn:
        ticket_id = store.create_ticket(conn, subject="late", status="open", requester="c@example.org",
                                        group_name="support", assignee="alice@example.com", created_at=now,
                                        updated_at=now)
        store.add_message(conn, ticket_id=ticket_id, direction="in", from_addr="c@example.org", text="late?",
                          full_text="late?", author_role="customer", created_at=now)   # waits: a respond clock
        on_status_change(conn, app, ticket_id, "open", now - timedelta(seconds=11))
    caplog.set_level(logging.ERROR, logger="ticketd.timers")
    for _ in range(3):
        assert fire_due_timers(app) == 0
    failures = [r for r in caplog.records if r.name == "ticketd.timers"]
    assert len(failures) == 3
    assert len([r for r in failures if r.exc_info]) == 1
    assert all("timer_breached.html.j2 line 3" in r.getMessage() for r in failures if not r.exc_info)
