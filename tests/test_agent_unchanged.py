"""Agent commands that would change nothing: the agent hears why, the ticket and its timers stay as they are."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from tests.desk import body_text, build_mail, open_desk
from ticketd.domain.commands import plan_commands, read_agent_reply, unchanged_commands
from ticketd.store.tables import timers

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
NOW = datetime(2030, 6, 1, 12, 0)


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _ticket_with_agent(desk) -> int:
    return desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)


def _agent_mail(desk, tid, agent, body):
    return desk.send(build_mail(agent, body, to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer"))


def _timers(desk, tid) -> list[tuple]:
    with desk.app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(timers.c.id, timers.c.kind, timers.c.state, timers.c.due_at)
            .where(timers.c.ticket_id == tid).order_by(timers.c.id))]


def _unchanged_answer(desk, tid, before: int) -> str:
    """The one mail ALICE got since `before` outbox rows to her: the no-change answer; its text."""
    [row] = desk.rows(recipient=ALICE)[before:]
    assert row["template"] == "agent/command_unchanged"
    answer = desk.last(ALICE)
    # PRODUCT.md "Loops and robots": an answer to the agent's mail, to her own signed address.
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["Reply-To"] == desk.agent_address(tid, ALICE)
    assert str(answer["Subject"]).startswith(f"[#{tid}] Nothing to change:")
    text = body_text(answer)
    assert "changed nothing" in text and "Mend what is said above" not in text
    return text


def _fields(ticket: dict) -> dict:
    return {k: ticket[k] for k in ("status", "priority", "type", "assignee", "closed_at", "updated_at",
                                   "first_response_at")}


# ---------------------------------------------------------------- end to end


def test_close_on_a_closed_ticket_says_so_and_changes_nothing(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#close\n")
    closed = desk.ticket(tid)
    assert closed["status"] == "closed"
    to_customer, to_alice = len(desk.rows(recipient=CUSTOMER)), len(desk.rows(recipient=ALICE))
    events = len(desk.events(tid))

    _agent_mail(desk, tid, ALICE, "#close\n")
    assert _fields(desk.ticket(tid)) == _fields(closed)
    assert len(desk.rows(recipient=CUSTOMER)) == to_customer
    text = _unchanged_answer(desk, tid, to_alice)
    assert f"#close: ticket [#{tid}] is already closed (closed by agent {ALICE} at " in text
    new_events = desk.events(tid)[events:]
    assert [e["kind"] for e in new_events] == ["commands_unchanged"]
    assert "#close: ticket" in new_events[0]["reason"] and "mail <" in new_events[0]["reason"]
    stored = desk.messages(tid)[-1]
    assert stored["internal"] and stored["id"] == new_events[0]["message_id"]


def test_priority_already_set_is_answered_and_no_timer_moves(desk):
    tid = _ticket_with_agent(desk)
    before, armed = desk.ticket(tid), _timers(desk, tid)
    assert armed                                             # `new` has respond_within in the test rules
    to_alice = len(desk.rows(recipient=ALICE))
    _agent_mail(desk, tid, ALICE, "#priority normal\n")
    assert "#priority normal: the priority is already normal" in _unchanged_answer(desk, tid, to_alice)
    assert _fields(desk.ticket(tid)) == _fields(before)
    assert _timers(desk, tid) == armed


def test_assign_to_the_current_assignee_is_answered(desk):
    tid = _ticket_with_agent(desk)
    to_alice = len(desk.rows(recipient=ALICE))
    _agent_mail(desk, tid, ALICE, "#assign Alice@Example.com\n#type question\n#type question\n")
    # A command given twice is an error, not a no-op: the rejection wins.
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/command_rejected"
    assert "Mend what is said above" in body_text(desk.last(ALICE))
    to_alice = len(desk.rows(recipient=ALICE))
    _agent_mail(desk, tid, ALICE, "#assign Alice@Example.com\n")
    assert f"the ticket is already assigned to {ALICE}" in _unchanged_answer(desk, tid, to_alice)
    assert desk.ticket(tid)["assignee"] == ALICE
    assert not desk.events(tid, "assigned")[1:]                # only the first assignment


def test_status_already_set_restarts_no_timer(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n\nPlease send the error log.\n")
    armed, to_alice = _timers(desk, tid), len(desk.rows(recipient=ALICE))
    assert {kind for _, kind, state, _ in armed if state == "armed"} == {"warn", "close"}
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n")
    text = _unchanged_answer(desk, tid, to_alice)
    assert f"#status waiting_customer: the status is already waiting_customer (set by {ALICE} at " in text
    assert _timers(desk, tid) == armed


def test_a_mixed_mail_applies_its_change_and_says_nothing_more(desk):
    tid = _ticket_with_agent(desk)
    to_alice, to_customer = len(desk.rows(recipient=ALICE)), len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "#priority normal\n#type bug\n")
    ticket = desk.ticket(tid)
    assert (ticket["priority"], ticket["type"]) == ("normal", "bug")
    assert len(desk.rows(recipient=ALICE)) == to_alice and len(desk.rows(recipient=CUSTOMER)) == to_customer
    [commands] = desk.events(tid, "agent_commands")
    assert "changed nothing: #priority normal: the priority is already normal" in commands["reason"]
    assert not desk.events(tid, "commands_unchanged")


def test_a_public_reply_with_a_redundant_status_is_relayed_without_an_extra_answer(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "We are looking into it.\n")
    assert desk.ticket(tid)["status"] == "open"
    to_alice = len(desk.rows(recipient=ALICE))
    _agent_mail(desk, tid, ALICE, "#status open\n\nThe technician comes on Monday.\n")
    assert "The technician comes on Monday." in body_text(desk.last(CUSTOMER))
    assert desk.rows(recipient=CUSTOMER)[-1]["template"] == "requester/agent_reply"
    assert len(desk.rows(recipient=ALICE)) == to_alice
    replied = desk.events(tid, "agent_replied")[-1]
    assert "changed nothing: #status open: the status is already open" in replied["reason"]
    assert not desk.events(tid, "commands_unchanged")


def test_a_note_with_a_redundant_priority_is_stored_and_sent_as_a_note(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, BOB, "#priority high\n")              # Bob takes part
    to_alice = len(desk.rows(recipient=ALICE))
    _agent_mail(desk, tid, ALICE, "#note\n#priority high\nThe customer called, it is urgent for them.\n")
    assert desk.rows(recipient=BOB)[-1]["template"] == "agent/internal_note"
    assert len(desk.rows(recipient=ALICE)) == to_alice
    note = desk.events(tid, "internal_note")[-1]
    assert "changed nothing: #priority high: the priority is already high" in note["reason"]


# ---------------------------------------------------------------- the decision, pure

TICKET = dict(id=12, status="open", priority="high", type="bug", assignee=ALICE, postponed_until=None,
              dev_engineer=None, dev_tracker_key=None, dev_due=None)
CLOSED_BY = dict(kind="closed_by_agent", actor=BOB, at=datetime(2030, 5, 30, 9, 15, 7, 500),
                 reason="closed by agent bob@example.com; mail <x@y>")


def _unchanged(text: str, ticket: dict = TICKET, status_event: dict | None = None):
    reply = read_agent_reply(text)
    plan = plan_commands(reply, now=NOW, agents=[ALICE, BOB], groups=["support"])
    assert plan.ok, plan.errors
    return unchanged_commands(reply, plan, ticket, status_event=status_event)


@pytest.mark.parametrize("text, ticket, reasons, whole", [
    ("#priority high", TICKET, ["#priority high: the priority is already high"], True),
    ("#priority urgent", TICKET, [], False),
    ("#type bug", TICKET, ["#type bug: the type is already bug"], True),
    ("#type idea", dict(TICKET, type=None), [], False),
    ("#assign alice@example.com", TICKET, [f"#assign alice@example.com: the ticket is already assigned to {ALICE}"],
     True),
    ("#assign bob@example.com", TICKET, [], False),
    ("#assign support", TICKET, [], False),                     # a group picks again: a change
    ("#status open", TICKET, ["#status open: the status is already open"], True),
    ("#status waiting_customer", TICKET, [], False),
    ("#close", dict(TICKET, status="closed"), ["#close: ticket [#12] is already closed"], True),
    ("#close", TICKET, [], False),
    ("#postpone 2030-07-01", dict(TICKET, status="postponed", postponed_until=datetime(2030, 7, 1)),
     ["#postpone 2030-07-01: the ticket is already postponed until 2030-07-01T00:00:00Z"], True),
    ("#postpone 2030-07-02", dict(TICKET, status="postponed", postponed_until=datetime(2030, 7, 1)), [], False),
    ("#dev carol PRJ-1 2030-07-01", dict(TICKET, status="in_development", dev_engineer="carol",
                                         dev_tracker_key="PRJ-1", dev_due=datetime(2030, 7, 1)),
     ["#dev carol PRJ-1 2030-07-01: the ticket is already in development with these engineer, tracker key "
      "and due date"], True),
    ("#dev carol PRJ-2 2030-07-01", dict(TICKET, status="in_development", dev_engineer="carol",
                                         dev_tracker_key="PRJ-1", dev_due=datetime(2030, 7, 1)), [], False),
    # Mixed: the no-op is named, but the mail changes something.
    ("#priority high\n#type idea", TICKET, ["#priority high: the priority is already high"], False),
    # Text to relay, a note to store, a proposal to send: never the whole mail.
    ("#priority high\n\nHello, any news?", TICKET, ["#priority high: the priority is already high"], False),
    ("#note\n#priority high\nCalled them.", TICKET, ["#priority high: the priority is already high"], False),
    ("#propose\nReplace the fuser.", dict(TICKET, status="solution_proposed"),
     ["#propose: the status is already solution_proposed"], False),
    ("Just a reply.", TICKET, [], False),
    ("#note\nOnly a note.", TICKET, [], False),
])
def test_which_commands_change_nothing(text, ticket, reasons, whole):
    unchanged = _unchanged(text, ticket)
    assert (list(unchanged.reasons), unchanged.whole_mail) == (reasons, whole)


def test_who_set_the_status_and_when():
    unchanged = _unchanged("#close", dict(TICKET, status="closed"), CLOSED_BY)
    assert unchanged.reasons == ("#close: ticket [#12] is already closed "
                                 "(closed by agent bob@example.com at 2030-05-30T09:15:07Z)",)
    auto = dict(kind="auto_closed", actor="system:timers", at=datetime(2030, 5, 30), reason="close after 4d")
    assert "(closed automatically: close after 4d at 2030-05-30T00:00:00Z)" in _unchanged(
        "#status closed", dict(TICKET, status="closed"), auto).reasons[0]
    opened = dict(kind="status", actor=ALICE, at=datetime(2030, 5, 30), reason="#status open by alice")
    assert _unchanged("#status open", TICKET, opened).reasons == (
        f"#status open: the status is already open (set by {ALICE} at 2030-05-30T00:00:00Z)",)
