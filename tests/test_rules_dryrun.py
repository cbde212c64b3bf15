"""`ticketd rules test` routes a mail the way the daemon does: key facts, the ticket's default priority."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingest.match import desk_address
from ingest.parse import dedupe_key, parse_mail
from tests.desk import build_mail
from ticketd.clock import utcnow
from ticketd.pipeline import process_raw
from ticketd.rules_dryrun import dry_run
from ticketd.rules_file import load_rules
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events, outbox, tickets, timers

AGENTS = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com,   name: Bob,   groups: [support, billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
timers:
  new: {respond_within: 4h, on_breach: reassign}
"""

BY_TYPE = AGENTS + """\
routes:
  - name: bugs go to billing
    if: {type: bug}
    then: {group: billing}
  - name: everything else
    then: {group: support}
"""

BY_PRIORITY = AGENTS + """\
routes:
  - name: urgent subjects
    if: {subject: "(?i)urgent"}
    then: {priority: urgent}
    continue: true
  - name: normal priority to billing
    if: {priority: normal}
    then: {group: billing}
  - name: everything else
    then: {group: support}
"""


def _both_ways(make_app, sqlite_url, tmp_path, rules: str, raw: bytes):
    """Route one mail by the dry run and by the daemon's pipeline; (dry run, ticket row, routed event)."""
    app = make_app(sqlite_url, rules=rules)
    dry = dry_run(load_rules(tmp_path / "rules.yaml"), parse_mail(raw), utcnow())
    key, message_id = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome is not None and outcome.quarantined is None and outcome.ticket_id is not None
    with app.engine.connect() as conn:
        ticket = conn.execute(select(tickets).where(tickets.c.id == outcome.ticket_id)).mappings().one()
        routed = conn.execute(select(events).where(events.c.ticket_id == outcome.ticket_id,
                                                   events.c.kind == "routed")).mappings().one()
    return dry, ticket, routed


def test_a_type_key_fact_routes_the_dry_run_like_the_daemon(make_app, sqlite_url, tmp_path):
    # PRODUCT.md "Key facts": `Type:` at the top of the first mail fills the ticket's type.
    raw = build_mail("cust@example.org", "Type: bug\nSource: web\n\nIt crashes on save.\n",
                     subject="Crash").as_bytes()
    dry, ticket, routed = _both_ways(make_app, sqlite_url, tmp_path, BY_TYPE, raw)

    assert (ticket["type"], ticket["group_name"], ticket["source"]) == ("bug", "billing", "web")
    assert routed["reason"] == "routes: bugs go to billing"
    assert dry.decision.routes == ("bugs go to billing",)
    assert dry.decision.group == ticket["group_name"]
    lines = dry.lines()
    assert "route: 'bugs go to billing' matched because type is bug" in lines
    assert any(line.startswith("group: billing  priority: normal  type: bug ") for line in lines)


@pytest.mark.parametrize("subject, routes, group, priority", [
    ("Printer on fire", ("normal priority to billing",), "billing", "normal"),
    ("URGENT: printer on fire", ("urgent subjects", "everything else"), "support", "urgent"),
])
def test_a_priority_normal_route_matches_a_plain_mail_in_the_dry_run_and_the_daemon(
        make_app, sqlite_url, tmp_path, subject, routes, group, priority):
    # A new ticket's priority is `normal` unless a route sets another (schema.sql);
    # PRODUCT.md: conditions match the ticket's priority.
    raw = build_mail("cust@example.org", "It is on fire.\n", subject=subject).as_bytes()
    dry, ticket, routed = _both_ways(make_app, sqlite_url, tmp_path, BY_PRIORITY, raw)

    assert (ticket["group_name"], ticket["priority"], ticket["type"]) == (group, priority, None)
    assert routed["reason"] == "routes: " + ", ".join(routes)
    assert dry.decision.routes == routes
    assert (dry.decision.group, dry.decision.priority or "normal") == (group, priority)


CLOSES_SPAM = AGENTS + """\
routes:
  - name: spam
    if: {header.X-Spam-Flag: "(?i)^yes"}
    then: {group: support, close: true, tags: [spam]}
  - name: everything else
    then: {group: support}
"""


def test_a_closing_route_keeps_the_mail_closed_unanswered_and_unassigned(make_app, sqlite_url, tmp_path):
    raw = build_mail("spammer@example.net", "Cheap watches.\n", subject="Offer", X_Spam_Flag="YES").as_bytes()
    dry, ticket, routed = _both_ways(make_app, sqlite_url, tmp_path, CLOSES_SPAM, raw)
    assert (ticket["status"], ticket["assignee"], ticket["group_name"]) == ("closed", None, "support")
    assert ticket["closed_at"] is not None
    assert routed["reason"] == "routes: spam"
    lines = dry.lines()
    assert "status: closed at once by the route (no acknowledgement, no agent, no timers)" in lines
    assert "mail: none" in lines and not any(line.startswith(("agent:", "timer:")) for line in lines)
    assert any("acknowledgement: suppressed" in line for line in lines)

    app = make_app(sqlite_url, rules=CLOSES_SPAM)
    with app.engine.connect() as conn:
        kinds = conn.execute(select(events.c.kind, events.c.reason).where(events.c.ticket_id == ticket["id"])
                             .order_by(events.c.id)).all()
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(timers)
                            .where(timers.c.state == "armed")).scalar_one() == 0
    assert [k for k, _ in kinds] == ["created", "routed", "tags", "closed_by_route"]
    assert kinds[-1][1] == "closed by route 'spam': no acknowledgement, no agent"

    # The sender writes again on it (not spam this time): reopened like any closed ticket.
    again = build_mail("spammer@example.net", "Really, I have a question.\n", subject=f"Re: [#{ticket['id']}] Offer")
    key, message_id = dedupe_key(again.as_bytes())
    stored = store_raw(app.engine, again.as_bytes(), source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome.ticket_id == ticket["id"]
    with app.engine.connect() as conn:
        assert conn.execute(select(tickets.c.status).where(tickets.c.id == ticket["id"])).scalar_one() == "open"


def _dump(path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_rules_test_with_the_daemon_config_says_which_ticket_a_reply_joins(make_app, sqlite_url, tmp_path):
    """A reply is no new ticket: `rules test --config` threads it as the daemon would, reading only."""
    from tests.cli import cli_ok
    from tests.desk import open_desk

    desk_gen = open_desk(make_app, sqlite_url, rules=BY_TYPE)
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "It crashes on save.\n", subject="Crash"))
        tid = desk.ticket()["id"]
        ack = desk.last("cust@example.org")
        reply = build_mail("cust@example.org", "Type: bug\nStill crashing.\n", subject=f"Re: {ack['Subject']}",
                           in_reply_to=str(ack["Message-ID"]))
        stranger = build_mail("eve@example.net", "Tell me about it.\n", subject=f"[#{tid}] Crash")
        away = build_mail("alice@example.com", "#away 1w\n", subject="Away",
                          to=desk_address(desk.app.signer, "support@example.com", "alice@example.com"))
    finally:
        desk_gen.close()
    for name, msg in (("reply.eml", reply), ("stranger.eml", stranger), ("away.eml", away)):
        (tmp_path / name).write_bytes(msg.as_bytes())
    config, rules = tmp_path / "ticketd.yaml", tmp_path / "rules.yaml"
    before = _dump(tmp_path / "ticketd.db")

    lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "reply.eml")).splitlines()
    assert lines[1] == (f"thread: joins ticket [#{tid}] (matched by references); routes, assignment, timers and "
                        "the acknowledgement apply only to a new ticket. As a new ticket it would get:")
    assert "  route: 'bugs go to billing' matched because type is bug" in lines
    # Another customer's tag threads nothing (PRODUCT.md): a new ticket of their own.
    lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "stranger.eml")).splitlines()
    assert not any(line.startswith("thread:") for line in lines) and "route: 'everything else' matched" in lines[1]
    # An agent's mail to their desk address is about no ticket: no route, nothing "as a new ticket".
    lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "away.eml")).splitlines()
    assert lines[1:] == ["desk: goes to the desk of alice@example.com (the agent's own commands; no ticket, no route)"]
    assert _dump(tmp_path / "ticketd.db") == before   # read only


def test_rules_test_knows_a_mail_kept_already_in_these_bytes_or_re_encoded(make_app, sqlite_url, tmp_path):
    """The daemon adds such a mail nowhere (ticketd/copies.py); the dry run must not say it would open or join one."""
    from tests.cli import cli_ok
    from tests.desk import open_desk

    def mail(cte: str, text: str = "Es brennt – größer.\n"):
        made = build_mail("cust@example.org", "", subject="Drucker brennt", Date="Tue, 02 Jan 2024 10:00:00 +0100")
        made.replace_header("Message-ID", "<kept@client.example.org>")
        made.set_content(text, cte=cte)
        made.add_attachment(b"log line 1\n", maintype="text", subtype="plain", filename="log.txt")
        return made

    desk_gen = open_desk(make_app, sqlite_url, rules=BY_TYPE)
    desk = next(desk_gen)
    try:
        desk.send(mail("8bit"))
        tid = desk.ticket()["id"]
        [kept] = desk.messages(tid)
    finally:
        desk_gen.close()
    config, rules = tmp_path / "ticketd.yaml", tmp_path / "rules.yaml"
    for cte in ("8bit", "quoted-printable", "base64"):
        (tmp_path / "again.eml").write_bytes(mail(cte).as_bytes())
        lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "again.eml")).splitlines()
        assert lines[1:] == [f"kept already: this mail is message {kept['id']} of ticket [#{tid}] (its Message-ID, "
                             "sender, Date, text and files alike): another delivery of it adds nothing, sends "
                             "nothing and changes nothing"], cte
    # The Message-ID reused for other words is another mail: it is routed as one.
    (tmp_path / "other.eml").write_bytes(mail("8bit", "Jetzt brennt auch der Scanner.\n").as_bytes())
    lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "other.eml")).splitlines()
    assert not any(line.startswith("kept already") for line in lines) and "route:" in "\n".join(lines)


FOR_ALICE = AGENTS + """\
routes:
  - name: asked for alice
    if: {subject: "(?i)for alice"}
    then: {assignee: alice@example.com}
  - name: everything else
    then: {group: support}
"""


def test_rules_test_skips_an_agent_away_by_their_own_word_as_the_daemon_does(make_app, sqlite_url, tmp_path):
    """An absence kept in the database (#away, `ticketd agents away`): before, the dry run predicted Alice
    where the daemon gave the ticket to Bob, and said nothing of a route's assignee being away."""
    from tests.cli import cli_ok
    from tests.desk import open_desk

    config, rules = tmp_path / "ticketd.yaml", tmp_path / "rules.yaml"
    desk_gen = open_desk(make_app, sqlite_url, rules=FOR_ALICE)
    desk = next(desk_gen)
    try:
        away = cli_ok(config, "agents", "away", "alice@example.com", "--until", "3d")
        until = away.removeprefix("alice@example.com is away until ").strip()
        plain = build_mail("cust@example.org", "It is on fire.\n", subject="Printer on fire")
        asked = build_mail("cust@example.org", "Please.\n", subject="For Alice: toner")
        (tmp_path / "plain.eml").write_bytes(plain.as_bytes())
        (tmp_path / "asked.eml").write_bytes(asked.as_bytes())

        lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "plain.eml")).splitlines()
        assert "agent: bob@example.com (round_robin in support, from the database's cursor)" in lines
        lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / "asked.eml")).splitlines()
        assert (f"agent: alice@example.com (assignee set by the route, who is away until {until}: the ticket "
                "goes to them all the same)") in lines

        grouped = FOR_ALICE.replace("then: {assignee: alice@example.com}", "then: {assignee: alice@example.com, "
                                                                          "group: support}")
        (tmp_path / "grouped.yaml").write_text(grouped)
        lines = cli_ok(config, "rules", "test", str(tmp_path / "grouped.yaml"), str(tmp_path / "asked.eml"))
        assert (f"agent: bob@example.com (the route's assignee alice@example.com is away until {until}, so "
                "round_robin in support, from the database's cursor)") in lines.splitlines()

        desk.send(plain)   # the daemon, as predicted
        assert desk.assign(desk.ticket()["id"]) == "bob@example.com"
        desk.send(asked)
        assert desk.ticket()["assignee"] == "alice@example.com"
    finally:
        desk_gen.close()
