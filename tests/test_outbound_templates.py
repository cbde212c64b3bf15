"""Templates: every one renders, customer text stays data, no header injection, failures roll back."""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy import func, select

from ingest.match import read_reply_addresses
from outbound.outbox import compose
from outbound.render import DEFAULT_TEMPLATES, Renderer, TemplateError
from outbound.template_check import SAMPLES, shipped_templates
from tests.sink import customer_mail, outbox_rows, receive
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice
from ticketd.store.tables import outbox, raw_mail, tickets

TICKET = dict(id=42, subject="Printer on fire", status="open", priority="normal", requester="cust@example.org",
              requester_name="Customer", assignee="alice@example.com", postponed_until=None, dev_due=None)
BASE = dict(ticket=TICKET, tag="[#42]", support_address="support@example.com", recipient="cust@example.org",
            recipient_name="Customer")

# The per-template variables templates/README.md documents (beyond the ones in BASE): the samples
# `ticketd templates check` renders with.
CONTEXTS = SAMPLES


def test_every_shipped_template_is_documented_and_renders():
    shipped = set(shipped_templates())
    assert set(CONTEXTS) == shipped   # `templates check` has a sample for each
    readme = (DEFAULT_TEMPLATES / "README.md").read_text()
    renderer = Renderer()
    for name in sorted(shipped):
        assert f"`{name}`" in readme, f"{name} missing from templates/README.md"
        rendered = renderer.render(name, {**BASE, **CONTEXTS[name]})
        assert rendered.subject.strip() and rendered.text.strip()
        assert rendered.html and "<" in rendered.html


def test_every_customer_mail_keeps_the_tickets_subject():
    # Gmail starts a new conversation when the subject changes (templates/README.md).
    renderer = Renderer()
    for name in (n for n in CONTEXTS if n.startswith("requester/")):
        assert renderer.render(name, {**BASE, **CONTEXTS[name]}).subject.strip() == TICKET["subject"], name


def test_status_wording_differs_per_status():
    statuses = ["open", "waiting_customer", "postponed", "in_development", "solution_proposed", "closed"]
    texts = {s: Renderer().render("requester/status_changed", {**BASE, "status": s}).text for s in statuses}
    assert len(set(texts.values())) == len(statuses)
    assert "reply" in texts["waiting_customer"].lower() and "accept" in texts["solution_proposed"]


def test_rating_request_and_accept_instructions_are_there():
    closed = Renderer().render("requester/ticket_closed", BASE).text
    assert "usefulness, speed and politeness" in closed and "1" in closed and "5" in closed
    thanked = Renderer().render("requester/ticket_closed", {**BASE, "rating": "5 5 4"})
    for body in (thanked.text, thanked.html):
        assert "Thank you for your rating" in body and "5 5 4" in body and "How did we do" not in body
    proposed = Renderer().render("requester/solution_proposed", {**BASE, **CONTEXTS["requester/solution_proposed"]})
    assert "accept" in proposed.text


def _compose(app, notice, ticket=TICKET):
    raw = compose(app, notice, ticket, [], "m1@example.com", utcnow()).as_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def test_customer_text_is_data_and_html_is_escaped(make_app, sqlite_url):
    app = make_app(sqlite_url)
    ticket = dict(TICKET, subject="{{7*7}} <b>bold</b>")
    text = "{{7*7}} {% raw %} <script>alert(1)</script>"
    _, msg = _compose(app, Notice("requester/agent_reply", "cust@example.org", 42, auto_submitted=None,
                                  context={"text": text, "agent_name": "{{7*7}}"}), ticket)
    assert msg["Subject"] == "[#42] {{7*7}} <b>bold</b>"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text in plain and "49" not in plain
    assert "&lt;script&gt;" in html and "<script>" not in html and "49" not in html
    # PRODUCT.md marks everything ticketd sends; a relayed reply answers the agent's mail (RFC 3834 5).
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "DR, RN, NRN, OOF, AutoReply"


def test_cr_lf_in_subject_and_names_never_makes_a_header(make_app, sqlite_url):
    app = make_app(sqlite_url)
    ticket = dict(TICKET, subject="Hello\r\nBcc: victim@example.net\r\n\r\nbody")
    raw, msg = _compose(app, Notice("requester/agent_reply", "cust@example.org", 42, auto_submitted=None,
                                    from_name="Alice\r\nBcc: victim2@example.net",
                                    context={"text": "hi", "agent_name": "Alice"}), ticket)
    assert msg["Bcc"] is None
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]
    assert len(msg.get_all("Subject")) == 1 and "Bcc: victim@example.net" in msg["Subject"]


def test_agent_reply_carries_signed_like_and_dislike_links(make_app, sqlite_url):
    app = make_app(sqlite_url, rules="agents: []\nroutes: []\n")
    receive(app, customer_mail())
    from outbound.outbox import queue_notices

    with app.engine.begin() as conn:
        [row_id] = queue_notices(conn, app, [Notice(
            "requester/agent_reply", "cust@example.org", 1, auto_submitted=None, message_row_id=1,
            context={"text": "Fixed.", "agent_name": "Alice"})], utcnow())
        raw = conn.execute(select(outbox.c.raw).where(outbox.c.id == row_id)).scalar_one()
    msg = email.message_from_bytes(bytes(raw), policy=email.policy.default)
    plain = msg.get_body(("plain",)).get_content()
    links = [w.removeprefix("mailto:") for w in plain.split() if w.startswith("mailto:")]
    found = read_reply_addresses(app.signer, "support@example.com", links)
    assert [(a.reaction, a.message_row_id) for a in found] == [("like", 1), ("dislike", 1)]


def test_a_broken_override_is_named_and_nothing_is_written(make_app, sqlite_url, tmp_path):
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.txt.j2").write_text("Hello {{ no_such_variable }}\n")
    app = make_app(sqlite_url, extra=f"templates_dir: {tmp_path / 'overrides'}\n")
    with pytest.raises(TemplateError, match="requester/ticket_opened"):
        Renderer(app.settings.templates_dir).render("requester/ticket_opened", BASE)
    receive(app, customer_mail())
    with app.engine.connect() as conn:
        state, reason = conn.execute(select(raw_mail.c.state, raw_mail.c.reason)).one()
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 0
    assert state == "quarantined" and "requester/ticket_opened" in reason
    assert outbox_rows(app) == []


def test_an_override_replaces_the_shipped_template(make_app, sqlite_url, tmp_path):
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.subject.j2").write_text("We got it: {{ ticket.subject }}")
    renderer = Renderer(tmp_path / "overrides")
    assert renderer.render("requester/ticket_opened", BASE).subject == "We got it: Printer on fire"
