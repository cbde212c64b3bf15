"""An agent's desk address: `#away` and `#back` by mail, and everything that then skips them until they are back."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from ingest.match import desk_address
from tests.cli import cli_ok, run_cli
from tests.desk import body_text, build_mail, open_desk
from ticketd import daily_summary
from ticketd.assignment import sweep_unassigned
from ticketd.clock import utcnow
from ticketd.daily_summary import send_daily_summaries
from ticketd.domain.absence import DeskRefusal, DeskRequest, read_desk_mail, with_absences
from ticketd.rules_file import load_rules_text
from ticketd.store.tables import agent_absences, raw_mail, tickets, timers
from ticketd.timers import fire_due_timers

CUSTOMER, ALICE, BOB, CAROL, DAVE = ("cust@example.org", "alice@example.com", "bob@example.com",
                                     "carol@example.com", "dave@example.com")
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [support]}
  - {email: dave@example.com, name: Dave, groups: [billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - if: {subject: "(?i)invoice"}
    then: {group: billing}
  - then: {group: support}
timers:
  new: {respond_within: 4h, on_breach: reassign}
daily_summary: {at: "00:00"}
"""
NOW = datetime(2026, 11, 23, 9, 0)


# ---------------------------------------------------------------- what a desk mail asks (pure)


@pytest.mark.parametrize(("text", "expected"), [
    ("#away\n", DeskRequest("away")),
    ("#away 5d\nSee you.\n", DeskRequest("away", NOW + timedelta(days=5))),
    ("#AWAY until 2026-12-01\n", DeskRequest("away", datetime(2026, 12, 1))),
    ("#away 2026-12-01T13:00+01:00\n", DeskRequest("away", datetime(2026, 12, 1, 12, 0))),
    ("> quoted summary\n\n#back\n", DeskRequest("back")),
    ("Hello, what can I write here?\n", DeskRequest("show")),
    ("", DeskRequest("show")),
    ("#away soon\n", DeskRefusal("#away soon", "'soon' is not a duration or an ISO date.")),
    ("#away 2026-11-01\n", DeskRefusal("#away 2026-11-01",
                                       "'2026-11-01' is in the past; give the time you are back.")),
    ("#back now\n", DeskRefusal("#back now", "#back takes nothing on its line.")),
    ("#away 2d\n#back\n", DeskRefusal("#back", "one command per mail here: #away, #back or #summary.")),
    ("#summary\n", DeskRequest("summary")),
    ("#summary please\n", DeskRefusal("#summary please", "#summary takes nothing on its line.")),
])
def test_a_desk_mail_asks_for_one_thing(text, expected):
    assert read_desk_mail(text, NOW) == expected


@pytest.mark.parametrize("text", ["#away: 2w\n", "#away : 2w\n", "# away 2w\n", "#  Away: 2w\n",
                                  "\u00a0#\u00a0away\u00a02w\nSee you.\n", "> summary\n\n# away: 2w\n"])
def test_the_desk_reads_a_colon_or_spaces_after_the_hash_as_a_ticket_does(text):
    """`#away: 2w` and `# away 2w` were answered "You take new tickets", the agent left available."""
    assert read_desk_mail(text, NOW) == DeskRequest("away", NOW + timedelta(weeks=2))


@pytest.mark.parametrize("text, action", [("# back\n", "back"), ("#back:\n", "back"), ("# Summary\n", "summary"),
                                          ("#summary:\n", "summary")])
def test_back_and_summary_in_the_colon_or_spaced_form(text, action):
    assert read_desk_mail(text, NOW) == DeskRequest(action)


@pytest.mark.parametrize("text, line, fragment", [
    # A command under a greeting, as on a ticket: refused, never answered as if nothing was asked.
    ("Hi,\n#away 2w\nBack on the 8th.\n", "#away 2w", "write it on the mail's first line"),
    ("Hello desk,\n\n# away: 2w\n", "# away: 2w", "below other text (a greeting, say)"),
    ("Hi,\n#back\n", "#back", "write it on the mail's first line"),
    ("#away 2w\nSee you.\n#back\n", "#back", "#away 2w above it is one already"),
    ("Hi,\n#status open\n", "#status open", "#status is not a command at this address"),
    # A line that starts like a command and reads as none.
    ("#away.\n", "#away.", "cannot be read as a command (#away?"),
    ("## away 2w\n", "## away 2w", "cannot be read as a command (#away?"),
    ("#away, 2w\nThanks\n", "#away, 2w", "cannot be read as a command (#away?"),
    ("# Backk\n", "# Backk", "cannot be read as a command (#back?"),
    ("#stauts: open\n", "#stauts: open", "#status is not a command at this address"),
])
def test_a_desk_line_that_looks_like_a_command_and_cannot_be_read_is_refused(text, line, fragment):
    refused = read_desk_mail(text, NOW)
    assert isinstance(refused, DeskRefusal) and refused.line == line
    assert fragment in refused.error and "nothing was changed" in refused.error


@pytest.mark.parametrize("text", ["Hello, what can I write here?\n", "Hi,\nI am away next week, #away 1w?\n",
                                  "#1 question: what is this address for?\n", "# What is this?\n",
                                  "Hi,\n#hashtag\n"])
def test_a_desk_mail_with_no_command_in_it_shows_where_the_agent_stands(text):
    assert read_desk_mail(text, NOW) == DeskRequest("show")


def test_a_ticket_command_at_the_desk_is_refused_saying_where_it_goes():
    refused = read_desk_mail("#status open\n", NOW)
    assert isinstance(refused, DeskRefusal) and refused.line == "#status open"
    assert "#status is not a command at this address" in refused.error and "reply to that ticket" in refused.error


def test_absent_agents_are_away_in_the_rule_set_and_nobody_else():
    rules = load_rules_text(RULES)
    assert with_absences(rules, set()) is rules
    assert with_absences(rules, {"nobody@example.com"}) is rules
    overlaid = with_absences(rules, {BOB})
    assert [(a.email, a.away) for a in overlaid.members("support")] == [(ALICE, False), (BOB, True), (CAROL, False)]
    assert overlaid.digest == rules.digest and overlaid.routes == rules.routes


# ---------------------------------------------------------------- on a desk


@pytest.fixture
def desk(make_app, db_url):
    daily_summary._done.clear()
    yield from open_desk(make_app, db_url, rules=RULES)


def _new_ticket(desk, subject: str = "Printer on fire") -> tuple[int, str | None]:
    desk.send(build_mail(CUSTOMER, f"{subject}.\n", subject=subject))
    ticket_id = desk.ticket()["id"]
    return ticket_id, desk.assign(ticket_id)


def _to_desk(desk, agent: str, body: str, *, sender: str | None = None, **headers) -> None:
    address = desk_address(desk.app.signer, desk.app.settings.support_address, agent)
    desk.send(build_mail(sender or agent, body, to=address, subject="away", **headers))


def test_an_agent_away_by_a_reply_to_their_summary_gets_no_new_tickets_until_back(desk):
    first, assignee = _new_ticket(desk)
    assert assignee == ALICE
    assert send_daily_summaries(desk.app, utcnow()) == [ALICE]
    desk.flush()
    [summary] = [m for m in desk.inbox(ALICE) if str(m["Subject"]).startswith("Your tickets")]
    assert "Going away? Reply to this mail with" in body_text(summary)
    tickets_before = len(desk.rows(tickets))

    desk.reply_to(summary, ALICE, "#away 5d\n\nOn holiday.\n")

    answer = desk.last(ALICE)
    until = desk.rows(agent_absences, agent=ALICE)[0]["until"]
    assert until is not None and timedelta(days=5) - timedelta(minutes=1) < until - utcnow() <= timedelta(days=5)
    assert str(answer["Subject"]) == f"You are away until {until:%Y-%m-%d %H:%M} UTC"
    text = body_text(answer)
    assert "Noted: you are away until" in text
    assert "The 1\nopen ticket you hold stays yours; its respond timer hands it on" in text.replace("\r\n", "\n")
    assert answer["Auto-Submitted"] == "auto-replied" and answer["In-Reply-To"]
    # Her mail opened no ticket and is kept, done.
    assert len(desk.rows(tickets)) == tickets_before
    last_raw = desk.rows(raw_mail)[-1]
    assert (last_raw["state"], last_raw["ticket_id"]) == ("done", None)

    assert [_new_ticket(desk, s)[1] for s in ("Scanner", "Fax", "Modem")] == [BOB, CAROL, BOB]
    assert desk.ticket(first)["assignee"] == ALICE      # what she holds stays hers

    desk.reply_to(answer, ALICE, "#back\n")
    back = desk.last(ALICE)
    assert str(back["Subject"]) == "You take new tickets"
    assert "Welcome back" in body_text(back) and desk.rows(agent_absences) == []
    assert [_new_ticket(desk, s)[1] for s in ("Router", "Phone")] == [CAROL, ALICE]


def test_a_group_whose_only_agent_is_away_waits_and_gets_its_ticket_when_the_absence_ends(desk):
    _to_desk(desk, DAVE, "#away 2d\n")
    waiting, assignee = _new_ticket(desk, "Invoice wrong")
    assert assignee is None and [e["to_value"] for e in desk.events(waiting, "assignment_waiting")] == ["billing"]
    assert sweep_unassigned(desk.app, grace_seconds=0) == 0

    with desk.app.engine.begin() as conn:   # two days pass
        conn.execute(agent_absences.update().values(until=utcnow() - timedelta(seconds=1)))
    assert sweep_unassigned(desk.app, grace_seconds=0) == 1
    assert desk.ticket(waiting)["assignee"] == DAVE

    _to_desk(desk, DAVE, "#away\n")          # until #back
    assert str(desk.last(DAVE)["Subject"]) == "You are away until you write #back"
    other, assignee = _new_ticket(desk, "Invoice twice")
    assert assignee is None
    _to_desk(desk, DAVE, "#back\n")
    assert sweep_unassigned(desk.app, grace_seconds=0) == 1
    assert desk.ticket(other)["assignee"] == DAVE


def test_a_breach_reassigns_past_an_agent_away_and_the_summary_skips_them(desk):
    ticket_id, assignee = _new_ticket(desk)
    assert assignee == ALICE
    _to_desk(desk, BOB, "#away 1w\n")
    with desk.app.engine.begin() as conn:   # her 4h have run out
        conn.execute(timers.update().where(timers.c.ticket_id == ticket_id).values(due_at=utcnow()))
    assert fire_due_timers(desk.app) == 1
    desk.flush()
    assert desk.ticket(ticket_id)["assignee"] == CAROL      # Bob would have been next
    assert sorted(send_daily_summaries(desk.app, utcnow())) == [CAROL]   # Alice holds nothing now; Bob is away


def _run_out(desk, ticket_id: int) -> None:
    """The ticket's armed timers run out now and the sweep fires one."""
    with desk.app.engine.begin() as conn:
        conn.execute(timers.update().where(timers.c.ticket_id == ticket_id, timers.c.state == "armed")
                     .values(due_at=utcnow()))
    assert fire_due_timers(desk.app) == 1
    desk.flush()


def _armed_kinds(desk, ticket_id: int) -> list[str]:
    return [t["kind"] for t in desk.rows(timers, ticket_id=ticket_id) if t["state"] == "armed"]


def test_a_breach_while_everyone_is_away_leaves_the_ticket_to_the_group_for_the_first_one_back(desk):
    """docs/rules.md: the away assignee does not keep it unseen; it waits, and comes overdue to whoever is back."""
    for agent in (ALICE, CAROL):
        _to_desk(desk, agent, "#away\n")
    ticket_id, assignee = _new_ticket(desk)
    assert assignee == BOB
    _to_desk(desk, BOB, "#away\n")
    _run_out(desk, ticket_id)

    ticket = desk.ticket(ticket_id)
    assert ticket["assignee"] is None and _armed_kinds(desk, ticket_id) == []
    [unassigned] = desk.events(ticket_id, "unassigned")
    assert unassigned["from_value"] == BOB and "is away and nobody else in support" in unassigned["reason"]
    assert [e["to_value"] for e in desk.events(ticket_id, "assignment_waiting")] == ["support"]
    told = body_text(desk.last(BOB))
    assert "waits in support for the first agent available" in told and "Assignee: nobody" in told
    assert "nothing more is needed from you" in told
    assert sweep_unassigned(desk.app, grace_seconds=0) == 0      # nobody is back yet

    _to_desk(desk, ALICE, "#back\n")
    assert sweep_unassigned(desk.app, grace_seconds=0) == 1
    desk.flush()
    assert desk.ticket(ticket_id)["assignee"] == ALICE
    given = [m for m in desk.inbox(ALICE) if "Assigned to you" in str(m["Subject"])][-1]
    assert "It is already overdue" in body_text(given) and "Printer on fire." in body_text(given)
    assert _armed_kinds(desk, ticket_id) == ["respond"]          # a whole respond_within of her own


def test_a_breach_with_the_assignee_away_goes_to_someone_at_the_desk_even_if_they_missed_it(desk):
    """Only an agent present reads it: one who missed this wait before beats the away assignee."""
    _to_desk(desk, CAROL, "#away\n")
    ticket_id, assignee = _new_ticket(desk)
    assert assignee == ALICE
    _run_out(desk, ticket_id)                                    # Alice misses it: Bob's turn
    assert desk.ticket(ticket_id)["assignee"] == BOB
    _to_desk(desk, BOB, "#away\n")
    _run_out(desk, ticket_id)                                    # Bob misses it, away

    assert desk.ticket(ticket_id)["assignee"] == ALICE
    assert "it is yours now, from Bob <bob@example.com>" in body_text(desk.last(ALICE))
    assert desk.events(ticket_id, "unassigned") == [] and _armed_kinds(desk, ticket_id) == ["respond"]
    _run_out(desk, ticket_id)                                    # she misses it again: it stays, and stops
    assert desk.ticket(ticket_id)["assignee"] == ALICE and _armed_kinds(desk, ticket_id) == []
    assert "nobody else available to take it" in body_text(desk.last(ALICE))


def test_mail_to_an_agents_desk_from_anyone_else_is_customer_mail(desk):
    _to_desk(desk, ALICE, "#away\nI am Alice, honestly.\n", sender="mallory@example.org")
    _to_desk(desk, ALICE, "#away\n", sender=BOB)     # another agent, not through his own desk
    assert desk.rows(agent_absences) == []
    opened = desk.rows(tickets)
    assert [(t["requester"], t["status"]) for t in opened] == [("mallory@example.org", "new"), (BOB, "new")]
    assert [m["matched_by"] for t in opened for m in desk.messages(t["id"]) if m["direction"] == "in"] == [
        "new", "new"]


def test_the_desk_says_what_was_wrong_and_where_the_agent_stands(desk):
    _to_desk(desk, ALICE, "#status open\n")
    refused = desk.last(ALICE)
    assert str(refused["Subject"]) == "Not applied: #status open"
    assert "#status is not a command at this address" in body_text(refused)

    _to_desk(desk, ALICE, "#away 2020-01-01\n")
    assert "is in the past" in body_text(desk.last(ALICE)) and desk.rows(agent_absences) == []

    _to_desk(desk, ALICE, "What is this address for?\n")
    shown = desk.last(ALICE)
    text = body_text(shown)
    assert str(shown["Subject"]) == "You take new tickets" and "you hold 0 open tickets" in text
    assert "#away 5d" in text and "#back" in text
    assert desk_address(desk.app.signer, "support@example.com", ALICE) in text
    assert desk.rows(tickets) == []

    _to_desk(desk, ALICE, "#back\n")
    assert "You were not away by your own word" in body_text(desk.last(ALICE))


def test_away_with_a_colon_or_spaced_is_applied_and_under_a_greeting_refused(desk):
    """These were answered "You take new tickets", so an agent leaving for two weeks believed themselves away."""
    for written in ("#away: 2w\n", "# away 2w\n"):
        _to_desk(desk, BOB, written)
        answer = desk.last(BOB)
        [absence] = desk.rows(agent_absences, agent=BOB)
        assert str(answer["Subject"]) == f"You are away until {absence['until']:%Y-%m-%d %H:%M} UTC", written
        assert timedelta(days=13, hours=23) < absence["until"] - utcnow() <= timedelta(weeks=2)
        _to_desk(desk, BOB, "# back\n")
        assert str(desk.last(BOB)["Subject"]) == "You take new tickets" and desk.rows(agent_absences) == []

    _to_desk(desk, BOB, "Hi,\n#away 2w\nBack on the 8th.\n")
    refused = desk.last(BOB)
    assert str(refused["Subject"]) == "Not applied: #away 2w"
    text = " ".join(body_text(refused).split())
    assert "below other text (a greeting, say) a line is not read as a command" in text
    assert "write it on the mail's first line" in text and "You take new tickets" in text
    assert desk.rows(agent_absences) == []

    _to_desk(desk, BOB, "## away 2w\n")
    assert "cannot be read as a command (#away?" in body_text(desk.last(BOB)) and desk.rows(agent_absences) == []
    assert [_new_ticket(desk, s)[1] for s in ("Scanner", "Fax")] == [ALICE, BOB]   # Bob was never away


def test_summary_at_the_desk_lists_the_agents_tickets_now_even_none(desk):
    _to_desk(desk, ALICE, "#summary\n")
    empty = desk.last(ALICE)
    assert str(empty["Subject"]) == f"Your tickets on {utcnow().date()}: 0 open"
    assert "None." in body_text(empty) and empty["Auto-Submitted"] == "auto-replied"
    assert empty["Reply-To"] == desk_address(desk.app.signer, "support@example.com", ALICE)

    ticket_id, _ = _new_ticket(desk)
    _to_desk(desk, ALICE, "#summary\n")
    listed = body_text(desk.last(ALICE))
    assert f"[#{ticket_id}] Printer on fire" in listed and "(times in UTC)" in listed
    assert desk.rows(agent_absences) == [] and desk.ticket(ticket_id)["assignee"] == ALICE


def test_an_automatic_reply_to_the_desk_is_kept_and_not_answered(desk):
    _to_desk(desk, ALICE, "I am out of the office.\n#away\n", Auto_Submitted="auto-replied")
    assert desk.inbox(ALICE) == [] and desk.rows(agent_absences) == [] and desk.rows(tickets) == []
    assert [(r["state"], r["ticket_id"]) for r in desk.rows(raw_mail)] == [("done", None)]


def test_an_admin_sees_who_is_away_and_sets_an_absence_for_an_agent(tmp_path, desk):
    config = tmp_path / "ticketd.yaml"
    _to_desk(desk, BOB, "#away 1w\n")
    listed = {a["email"]: a for a in json.loads(cli_ok(config, "agents", "list", "--json"))}
    assert list(listed) == [ALICE, BOB, CAROL, DAVE]
    bob = listed[BOB]
    assert (bob["available"], bob["away"], bob["away_in_rules"], bob["groups"]) == (False, True, False, ["support"])
    assert bob["absence"]["until"] > bob["absence"]["since"] and bob["absence"]["until"].endswith("Z")
    assert bob["desk_address"] == desk_address(desk.app.signer, "support@example.com", BOB)
    assert listed[ALICE]["absence"] is None and listed[ALICE]["available"] is True

    assert "carol@example.com is away until `ticketd agents back`" in cli_ok(config, "agents", "away", CAROL)
    assert [_new_ticket(desk, s)[1] for s in ("Scanner", "Fax")] == [ALICE, ALICE]   # Bob and Carol are away
    assert "away until #back" in cli_ok(config, "agents", "list")
    cli_ok(config, "agents", "back", CAROL)
    assert _new_ticket(desk, "Modem")[1] == CAROL
    assert json.loads(cli_ok(config, "agents", "list", "--json"))[0]["open_tickets"] == 2

    for args, error in ((("away", "nobody@example.com"), "nobody@example.com is not an agent"),
                        (("away", ALICE, "--until", "soon"), "'soon' is not a duration or an ISO date"),
                        (("away", ALICE, "--until", "2020-01-01"), "'2020-01-01' is in the past")):
        refused = run_cli(config, "agents", *args)
        assert refused.returncode != 0 and error in refused.stderr, refused.stderr
    assert desk.rows(agent_absences, agent=ALICE) == []
