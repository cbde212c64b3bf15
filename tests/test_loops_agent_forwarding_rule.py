"""An agent's mailbox that forwards every mail to the support address, as a new mail without loop markers
(a mail client's "forward to" rule): ticketd's answers to that agent must not ping-pong with it for ever.

Agents are outside the hourly cap for their notifications; the answers to their own mail were too, so
each forwarded mail got an answer ("your mail did not reach the customer", or their own mail echoed back
as the ticket's news), which the rule forwarded again, as fast as the mail went.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
CAP = 3


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url, extra=f"auto_mails_per_recipient_per_hour: {CAP}\n")


def forward_everything(desk, agent: str, rounds: int = 25) -> int:
    """The agent's rule: each mail delivered to them goes on to support@ as a new "Fwd:" mail from them.
    How many mails it forwarded before nothing more came (or `rounds` rounds were up)."""
    forwarded = 0
    for _ in range(rounds):
        new = desk.inbox(agent)[forwarded:]
        if not new:
            break
        for mail in new:
            desk.send(build_mail(agent, "---------- Forwarded message ---------\n" + body_text(mail),
                                 subject="Fwd: " + str(mail["Subject"])))
            forwarded += 1
    return forwarded


def test_answers_to_an_agents_forwarded_mail_stop_at_the_cap(desk):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    forwarded = forward_everything(desk, ALICE)
    answers = [r for r in desk.rows(recipient=ALICE) if r["template"] == "agent/mail_not_applied"]
    # The assignment notice is forwarded, each answer too, until the cap holds the next one back.
    assert len(answers) == CAP and forwarded == 1 + CAP
    [held] = [e for e in desk.events(tid, "mail_suppressed") if e["to_value"] == ALICE]
    assert held["reason"].startswith("agent/mail_not_applied: rate limit")
    assert desk.inbox(CUSTOMER)[1:] == []   # the customer had the acknowledgement, and none of this


def test_an_agent_is_not_told_of_their_own_mail_on_a_ticket_they_asked(desk):
    desk.send(build_mail(ALICE, "My own laptop is broken.\n", subject="Laptop"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    # The acknowledgement and the assignment come back as her mail on her ticket: kept, told to nobody.
    assert forward_everything(desk, ALICE) == 2
    assert [r["template"] for r in desk.rows(recipient=ALICE)] == ["requester/ticket_opened",
                                                                    "agent/ticket_assigned"]
    assert len(desk.messages(tid)) == 3
