"""A group renamed or removed in rules.yaml: its open tickets are routed again by the rules in force."""

from __future__ import annotations

import email
import email.policy
import json
import logging

from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.cli import run_cli
from tests.desk import body_text, build_mail, make_due
from tests.waiting import eventually
from ticketd.assignment import assign
from ticketd.clock import utcnow
from ticketd.pipeline import process_raw
from ticketd.rules_watch import RulesWatcher, reload
from ticketd.store import tickets as store
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events, outbox
from ticketd.timers import fire_due_timers

BEFORE = """\
agents:
  - {email: a1@example.com, name: A1, groups: [support]%(away)s}
  - {email: a2@example.com, name: A2, groups: [support, billing]%(away)s}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - name: invoices
    if: {subject: "(?i)invoice"}
    then: {group: billing}
  - name: everything else
    then: {group: support}
timers:
  new: {respond_within: 1h, on_breach: reassign}
"""

# support is now helpdesk, and printers take the mail that says it is about one (a header only the raw mail has).
RENAMED = """\
agents:
  - {email: a1@example.com, name: A1, groups: [helpdesk, printers]}
  - {email: a2@example.com, name: A2, groups: [helpdesk, billing]}
groups:
  helpdesk: {assign: round_robin}
  printers: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - name: invoices
    if: {subject: "(?i)invoice"}
    then: {group: billing}
  - name: printers
    if: {header.X-Product: "(?i)printer"}
    then: {group: printers}
  - name: everything else
    then: {group: helpdesk}
timers:
  new: {respond_within: 1h, on_breach: reassign}
"""

# support is gone, and only invoices have a route.
ONLY_BILLING = """\
agents:
  - {email: a1@example.com, name: A1, groups: [billing]}
  - {email: a2@example.com, name: A2, groups: [billing]}
groups:
  billing: {assign: round_robin}
routes:
  - name: invoices
    if: {subject: "(?i)invoice"}
    then: {group: billing}
timers:
  new: {respond_within: 1h, on_breach: reassign}
"""


def _before(away: bool = False) -> str:
    return BEFORE % dict(away=", away: true" if away else "")


def _mail_in(app, subject: str, **headers) -> int:
    """A customer's first mail, received and processed as the daemon does; the ticket it opened."""
    raw = build_mail("cust@example.org", "Hello,\nit does not work.\n", subject=subject, **headers).as_bytes()
    key, message_id = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome is not None and outcome.ticket_id is not None
    return outcome.ticket_id


def _ticket(app, ticket_id: int) -> dict:
    with app.engine.connect() as conn:
        return store.get_ticket(conn, ticket_id)


def _events(app, ticket_id: int, kind: str) -> list[dict]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(events).where(events.c.ticket_id == ticket_id,
                                                                   events.c.kind == kind)
                                              .order_by(events.c.id)).mappings()]


def _last_mail(app, recipient: str) -> str:
    with app.engine.connect() as conn:
        raw = conn.execute(select(outbox.c.raw).where(outbox.c.recipient == recipient)
                           .order_by(outbox.c.id.desc())).scalars().first()
    return body_text(email.message_from_bytes(bytes(raw), policy=email.policy.default))


def test_a_renamed_groups_waiting_tickets_are_routed_again_and_assigned(make_app, db_url, tmp_path, caplog):
    app = make_app(db_url, rules=_before(away=True))   # everyone away: the tickets wait in their groups
    plain = _mail_in(app, "Cannot log in")
    printer = _mail_in(app, "Paper jam", X_Product="LaserJet printer")
    invoice = _mail_in(app, "Invoice 42 is wrong")
    closed = _mail_in(app, "Old question")
    for ticket_id in (plain, printer, invoice, closed):
        assert assign(app, ticket_id) is None
    with app.engine.begin() as conn:
        store.update_ticket(conn, closed, utcnow(), status="closed")
    assert [_ticket(app, t)["group_name"] for t in (plain, printer, invoice)] == ["support", "support", "billing"]

    (tmp_path / "rules.yaml").write_text(RENAMED.replace("billing]}", "billing], away: true}"))
    with caplog.at_level(logging.INFO, logger="ticketd.rules"):
        assert reload(app) is True

    moved = {t: _ticket(app, t) for t in (plain, printer, invoice, closed)}
    assert (moved[plain]["group_name"], moved[plain]["assignee"]) == ("helpdesk", "a1@example.com")
    assert (moved[printer]["group_name"], moved[printer]["assignee"]) == ("printers", "a1@example.com")
    [event] = _events(app, plain, "group")
    assert (event["actor"], event["from_value"], event["to_value"]) == ("system:rules", "support", "helpdesk")
    assert event["rules_hash"] == app.rules.digest
    assert "group support is no longer in rules.yaml" in event["reason"]
    assert "routes: everything else" in event["reason"]
    assert "routes: printers" in _events(app, printer, "group")[0]["reason"]
    # A group still in the rules, and a closed ticket, are left as they were.
    assert (moved[invoice]["group_name"], moved[invoice]["assignee"]) == ("billing", None)
    assert moved[closed]["group_name"] == "support"
    assert _events(app, invoice, "group") == [] and _events(app, closed, "group") == []
    [summary] = [r.getMessage() for r in caplog.records if "routed again" in r.getMessage()]
    assert "support -> helpdesk: 1" in summary and "support -> printers: 1" in summary


def test_an_assigned_ticket_of_a_removed_group_keeps_its_agent_and_a_breach_reassigns_it(make_app, db_url,
                                                                                       tmp_path):
    app = make_app(db_url, rules=_before())
    ticket_id = _mail_in(app, "Cannot log in")
    assert assign(app, ticket_id) == "a1@example.com"
    with app.engine.begin() as conn:
        store.update_ticket(conn, ticket_id, utcnow(), priority="high")

    (tmp_path / "rules.yaml").write_text(RENAMED)
    assert reload(app) is True
    ticket = _ticket(app, ticket_id)
    # Only the group: the agent and the priority stay.
    assert (ticket["group_name"], ticket["assignee"], ticket["priority"]) == ("helpdesk", "a1@example.com", "high")

    make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    assert _ticket(app, ticket_id)["assignee"] == "a2@example.com"
    assert "reassigned to A2 <a2@example.com>" in _last_mail(app, "a1@example.com")


def test_no_route_giving_a_group_leaves_the_ticket_in_none_and_status_warns(make_app, db_url, tmp_path, caplog):
    app = make_app(db_url, rules=_before(away=True))
    waiting = _mail_in(app, "Cannot log in")
    taken = _mail_in(app, "Printer on fire")
    assert assign(app, waiting) is None
    with app.engine.begin() as conn:
        store.update_ticket(conn, taken, utcnow(), assignee="a1@example.com")

    (tmp_path / "rules.yaml").write_text(ONLY_BILLING)
    with caplog.at_level(logging.INFO, logger="ticketd.rules"):
        assert reload(app) is True

    assert (_ticket(app, waiting)["group_name"], _ticket(app, waiting)["assignee"]) == (None, None)
    assert (_ticket(app, taken)["group_name"], _ticket(app, taken)["assignee"]) == (None, "a1@example.com")
    [event] = _events(app, waiting, "group")
    assert (event["actor"], event["from_value"], event["to_value"]) == ("system:rules", "support", None)
    assert "no route gives it a group" in event["reason"]
    [summary] = [r for r in caplog.records if "routed again" in r.getMessage()]
    assert summary.levelno == logging.WARNING and "support -> no group: 2" in summary.getMessage()

    # The unassigned one nobody will take is a warning of `ticketd status`, naming it and the way out.
    done = run_cli(tmp_path / "ticketd.yaml", "status", "--json")
    desk = json.loads(done.stdout)
    [problem] = [p for p in desk["problems"] if p["part"] == "tickets"]
    assert problem["state"] == "warning"
    assert f"1 open ticket with no group and no agent, which nobody will take (#{waiting})" in problem["text"]
    assert "ticketd tickets assign ID GROUP-or-AGENT" in problem["text"]
    assert desk["no_group"] == {"open": 1, "ids": [waiting]}

    # The assigned one's breach says why nobody else is picked, not that nobody is available.
    make_due(app, taken)
    assert fire_due_timers(app) >= 1
    text = _last_mail(app, "a1@example.com")
    assert "nobody else available" not in text
    assert "no group" in text


def test_a_breach_in_a_group_the_rules_lost_says_so(make_app, db_url, tmp_path):
    app = make_app(db_url, rules=_before())
    ticket_id = _mail_in(app, "Cannot log in")
    assert assign(app, ticket_id) == "a1@example.com"
    with app.engine.begin() as conn:   # as before any reload routed it again
        store.update_ticket(conn, ticket_id, utcnow(), group_name="gone")
    make_due(app, ticket_id)
    assert fire_due_timers(app) == 1
    text = _last_mail(app, "a1@example.com")
    assert "nobody else available" not in text
    assert "group gone is no longer in rules.yaml" in text


def test_the_back_office_routes_again_at_start_what_a_rules_edit_left_while_stopped(make_app, db_url):
    app = make_app(db_url, rules=_before())
    ticket_id = _mail_in(app, "Cannot log in")
    assert assign(app, ticket_id) == "a1@example.com"
    restarted = make_app(db_url, rules=RENAMED)
    watcher = RulesWatcher(restarted, interval=60)
    watcher.start()
    try:
        assert eventually(lambda: _ticket(restarted, ticket_id)["group_name"] == "helpdesk")
    finally:
        watcher.stop()
    assert _ticket(restarted, ticket_id)["assignee"] == "a1@example.com"
