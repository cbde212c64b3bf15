"""A `header.<Name>` condition matches when any of the mail's headers of that name matches, not only the first."""

from __future__ import annotations

from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.cli import run_ticketd
from tests.desk import build_mail
from ticketd.pipeline import process_raw
from ticketd.rules_watch import reload
from ticketd.store import tickets as store
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support, billing, relayed]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
  relayed: {assign: round_robin}
routes:
  - name: billing label
    if: {header.X-Label: "^billing$"}
    then: {group: billing}
  - name: through the partner relay
    if: {header.Received: "relay\\\\.partner\\\\.example"}
    then: {group: relayed}
  - name: everything else
    then: {group: support}
"""


def _mail(labels: list[str], received: list[str] = ()) -> bytes:
    msg = build_mail("cust@example.org", "Hello,\nmy invoice is wrong.\n", subject="Wrong amount")
    for label in labels:
        msg["X-Label"] = label   # each assignment adds one more header of the name
    for hop in received:
        msg["Received"] = hop
    return msg.as_bytes()


def _process(app, raw: bytes) -> int:
    key, message_id = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome is not None and outcome.quarantined is None and outcome.ticket_id is not None
    return outcome.ticket_id


def _group(app, ticket_id: int) -> str | None:
    with app.engine.connect() as conn:
        return store.get_ticket(conn, ticket_id)["group_name"]


def test_the_daemon_routes_by_a_label_in_the_second_of_two_headers(make_app, db_url):
    app = make_app(db_url, rules=RULES)
    second = _process(app, _mail(["urgent", "billing"]))
    first = _process(app, _mail(["billing", "urgent"]))
    neither = _process(app, _mail(["urgent", "later"]))
    assert (_group(app, second), _group(app, first), _group(app, neither)) == ("billing", "billing", "support")
    # Several Received lines, as every relayed mail has: the partner's hop is not the top one.
    hops = ["from mx.example.com by in.example.com; Tue, 2 Jan 2024 10:00:02 +0000",
            "from relay.partner.example by mx.example.com; Tue, 2 Jan 2024 10:00:01 +0000"]
    relayed = _process(app, _mail([], hops))
    assert _group(app, relayed) == "relayed"
    with app.engine.connect() as conn:
        reason = conn.execute(select(events.c.reason).where(events.c.ticket_id == second,
                                                            events.c.kind == "routed")).scalar_one()
    assert reason == "routes: billing label"


def test_rules_test_says_which_of_the_repeated_headers_matched(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "mail.eml").write_bytes(_mail(["urgent", "billing"]))
    done = run_ticketd("rules", "test", str(tmp_path / "rules.yaml"), str(tmp_path / "mail.eml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "route: 'billing label' matched because header.x-label matches /^billing$/ at 'billing'" \
        in done.stdout.splitlines(), done.stdout
    assert "group: billing  " in done.stdout


def test_a_removed_groups_tickets_are_routed_again_by_every_header(make_app, sqlite_url, tmp_path):
    """Routing again from the first mail (docs/rules.md, a group renamed or removed) sees the same headers."""
    app = make_app(sqlite_url, rules=RULES.replace("  - name: billing label\n    if: {header.X-Label: \"^billing$\"}\n"
                                                   "    then: {group: billing}\n", ""))
    ticket = _process(app, _mail(["urgent", "billing"]))
    assert _group(app, ticket) == "support"
    (tmp_path / "rules.yaml").write_text(RULES.replace("support, ", "").replace("  support: {assign: round_robin}\n",
                                                                                 "")
                                         .replace("then: {group: support}", "then: {group: relayed}"))
    assert reload(app) is True
    assert _group(app, ticket) == "billing"
