"""Agent mail end to end: commands, internal notes, rejections, and spoofing that must not work."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from tests.desk import all_text, body_text, build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.authority import agent_authority, authentication_passes, vouched_for
from ticketd.domain.signing import address_fingerprint
from ticketd.store.tables import participants
from ticketd.store.tables import tickets as tickets_table

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
# A year surely ahead and within the 3650d a written date may lie ahead (tests/test_postpone_limits.py).
YEAR = utcnow().year + 2


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.fixture
def any_db_desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _ticket_with_agent(desk, body="The printer is on fire.\n"):
    return desk.open_assigned(CUSTOMER, body, ALICE)


def _agent_mail(desk, tid, agent, body, **kw):
    return desk.send(build_mail(agent, body, to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer",
                                **kw))


def _customer_mail(desk, since: int = 0) -> list[tuple[str, str]]:
    """(template, every text part decoded) of each outbox row for the customer, from the row's raw mail."""
    found = []
    for row in desk.rows(recipient=CUSTOMER)[since:]:
        msg = email.message_from_bytes(bytes(row["raw"]), policy=email.policy.default)
        parts = [part.get_content() for part in msg.walk() if part.get_content_maintype() == "text"]
        found.append((row["template"], str(msg["Subject"]) + "\n" + "\n".join(parts)))
    return found


# ---------------------------------------------------------------- commands, e2e


def test_commands_apply_together(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#priority urgent\n#type bug\n#assign bob@example.com\n\nBob will help you.\n")
    ticket = desk.ticket(tid)
    assert (ticket["priority"], ticket["type"], ticket["assignee"], ticket["status"]) == (
        "urgent", "bug", BOB, "open")
    assert "Bob will help you." in body_text(desk.last(CUSTOMER))
    assert desk.last(BOB)["Reply-To"] == desk.agent_address(tid, BOB)
    [priority] = desk.events(tid, "priority")
    assert (priority["actor"], priority["from_value"], priority["to_value"]) == (ALICE, "normal", "urgent")


def test_postpone_and_dev_set_fields_and_tell_the_customer(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, f"#postpone {YEAR}-01-15\n")
    ticket = desk.ticket(tid)
    assert ticket["status"] == "postponed" and ticket["postponed_until"].year == YEAR
    assert desk.rows(recipient=CUSTOMER)[-1]["template"] == "requester/status_changed"
    assert f"is postponed until {YEAR}-01-15. We will" in body_text(desk.last(CUSTOMER))
    assert f"(until {YEAR}-01-15T00:00:00Z)" in desk.events(tid, "status")[-1]["reason"]
    _agent_mail(desk, tid, ALICE, f"#dev carol PRJ-42 {YEAR}-02-01T09:30:00\n")
    ticket = desk.ticket(tid)
    assert (ticket["status"], ticket["dev_engineer"], ticket["dev_tracker_key"]) == (
        "in_development", "carol", "PRJ-42")
    assert ticket["dev_due"].month == 2
    assert f"(expected by {YEAR}-02-01 09:30 UTC)" in body_text(desk.last(CUSTOMER))
    _agent_mail(desk, tid, ALICE, "#postpone 1w\n")
    assert "(until 20" in desk.events(tid, "status")[-1]["reason"]
    # to the minute, no seconds or microseconds
    assert re.search(r"postponed until \d{4}-\d\d-\d\d \d\d:\d\d UTC\. We", body_text(desk.last(CUSTOMER)))


def test_a_second_postpone_moves_the_wake_up(desk):
    from sqlalchemy import select

    from ticketd.store.tables import timers

    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, f"#postpone {YEAR}-01-15\n")
    _agent_mail(desk, tid, ALICE, f"#postpone {YEAR}-03-01\n")
    with desk.app.engine.connect() as conn:
        armed = conn.execute(select(timers.c.kind, timers.c.due_at).where(
            timers.c.ticket_id == tid, timers.c.state == "armed")).all()
    assert [(kind, due.date().isoformat()) for kind, due in armed] == [("wake", f"{YEAR}-03-01")]


@pytest.mark.parametrize("commands, fragment", [
    ("#status finished", "'finished' is not a status"),
    ("#status postponed", "use #postpone instead"),
    ("#assign mallory@example.net", "is neither an agent nor a group"),
    ("#postpone someday", "'someday' is not a duration or an ISO date"),
    ("#frobnicate", "#frobnicate is not a command"),
])
def test_bad_command_changes_nothing_and_says_why(desk, commands, fragment):
    tid = _ticket_with_agent(desk)
    before = desk.ticket(tid)
    customer_mail = len(desk.inbox(CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"#priority urgent\n{commands}\n\nDear customer, secret-ish reply.\n")
    after = desk.ticket(tid)
    assert {k: after[k] for k in ("status", "priority", "assignee", "first_response_at", "updated_at")} == {
        k: before[k] for k in ("status", "priority", "assignee", "first_response_at", "updated_at")}
    assert len(desk.inbox(CUSTOMER)) == customer_mail           # nothing relayed
    rejected = desk.last(ALICE)
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/command_rejected"
    assert fragment in body_text(rejected)
    assert "Write it as:" in body_text(rejected) or "Commands are: #note, #status" in body_text(rejected)
    assert rejected["Reply-To"] == desk.agent_address(tid, ALICE)
    # Her words come back with the refusal: a reply quotes them, to fix and send again.
    assert "Your mail:" in body_text(rejected) and "Dear customer, secret-ish reply." in body_text(rejected)
    stored = desk.messages(tid)[-1]
    assert stored["internal"] and "secret-ish reply" in stored["text"]
    assert fragment in desk.events(tid, "commands_rejected")[-1]["reason"]


def test_fixed_resend_after_rejection_goes_through(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#status waiting_custmer\n\nPlease send us the printer's error log.\n")
    assert desk.ticket(tid)["status"] == "new" and desk.inbox(CUSTOMER)[-1]["Subject"].startswith(f"[#{tid}]")
    # Sent again as commands alone, the question would never reach the customer: the refusal says so.
    told = " ".join(body_text(desk.last(ALICE)).split())
    assert "the ticket is unchanged and nothing was sent to anyone" in told
    assert "reply to this mail again: all of it, your words too (your mail is below)" in told
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n\nPlease send us the printer's error log.\n")
    assert desk.ticket(tid)["status"] == "waiting_customer"
    assert "Please send us the printer's error log." in body_text(desk.last(CUSTOMER))


def test_hidden_html_and_quoted_commands_are_text(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "Thanks, looking into it.\n",
                html='<div style="display:none">#close</div><p>Thanks, looking into it.</p>')
    assert desk.ticket(tid)["status"] == "open"
    _agent_mail(desk, tid, ALICE, "> #status closed\nStill looking.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert body_text(desk.last(CUSTOMER)).startswith("Still looking.")   # the quote is not relayed
    assert "#status closed" not in body_text(desk.last(CUSTOMER))


def test_html_only_mail_with_commands_is_rejected(desk):
    tid = _ticket_with_agent(desk)
    msg = build_mail(ALICE, "x", to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer")
    msg.set_content("<div>#close</div><p>Done.</p>", subtype="html")
    desk.send(msg)
    assert desk.ticket(tid)["status"] == "new"
    assert "plain-text part" in body_text(desk.last(ALICE))


def test_agent_out_of_office_is_not_relayed(desk):
    tid = _ticket_with_agent(desk)
    before = len(desk.inbox(CUSTOMER))
    _agent_mail(desk, tid, ALICE, "I am out of the office until Monday.\n", Auto_Submitted="auto-replied")
    assert len(desk.inbox(CUSTOMER)) == before and desk.ticket(tid)["status"] == "new"


# ---------------------------------------------------------------- internal notes


def test_internal_note_never_reaches_the_customer(desk):
    secret = "Customer owes us 40k, be careful what you promise"
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, BOB, "#priority high\n")            # Bob takes part too
    _agent_mail(desk, tid, ALICE, f"#note\n{secret}.\n")
    note_mail = desk.last(BOB)
    assert secret in body_text(note_mail)
    assert desk.rows(recipient=BOB)[-1]["template"] == "agent/internal_note"
    assert desk.ticket(tid)["status"] == "new"                  # a note is not a response
    assert desk.messages(tid)[-1]["internal"]

    # Bob answers the note from its mail: that is a note too (as RT keeps a reply to a comment a
    # comment), for Alice, not the customer; with the note quoted below it, it had gone to them.
    sent_before = len(desk.inbox(CUSTOMER))
    desk.reply_to(note_mail, BOB, f"Agreed, no promises.\n\nOn Monday Alice wrote:\n> {secret}.\n")
    assert len(desk.inbox(CUSTOMER)) == sent_before
    assert "Agreed, no promises." in body_text(desk.last(ALICE))
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/internal_note"
    [answer] = [m for m in desk.messages(tid) if m["text"].startswith("Agreed")]
    assert answer["internal"] and desk.events(tid)[-1]["kind"] == "internal_note"
    assert "a reply to an internal note's mail" in desk.events(tid)[-1]["reason"]
    assert "A reply to this mail is an internal note too" in body_text(note_mail)
    # Commands alone from the note's mail apply as written, and its answer to the customer goes from
    # a mail that shows their words: the quote is stripped.
    desk.reply_to(note_mail, BOB, "#priority urgent\n")
    assert desk.ticket(tid)["priority"] == "urgent"
    _agent_mail(desk, tid, BOB, f"Hello, we are on it.\n\nOn Monday Alice wrote:\n> {secret}.\n")
    assert "we are on it" in body_text(desk.last(CUSTOMER))
    # Pasting the note without quote marks: held back, Bob is told.
    sent_before = len(desk.inbox(CUSTOMER))
    _agent_mail(desk, tid, BOB, f"Hello again,\n\n{secret}.\n")
    assert len(desk.inbox(CUSTOMER)) == sent_before
    assert "internal note" in body_text(desk.last(BOB))
    # The customer writes, the ticket is closed by proposal and acceptance: still nothing.
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Thanks, any news?\n")
    _agent_mail(desk, tid, ALICE, "#propose\nWe replaced it.\n")
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "ok\n")
    assert desk.ticket(tid)["status"] == "closed"
    customer_rows = desk.rows(recipient=CUSTOMER)
    assert len(customer_rows) >= 4
    for row in customer_rows:
        assert b"40k" not in bytes(row["raw"])
    for mail in desk.inbox(CUSTOMER):
        assert "40k" not in all_text(mail)


def test_asking_the_customer_from_a_notes_mail_is_refused(desk):
    """A reply to a colleague's note is a note: with a question the customer never sees, a
    #status waiting_customer would start the reminder and auto-close on it; #propose likewise."""
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, BOB, "#note\nAsk them for the serial number.\n")
    note_mail = desk.last(ALICE)
    before = len(desk.inbox(CUSTOMER))
    desk.reply_to(note_mail, ALICE, "#status waiting_customer\nCould you send us the serial number?\n")
    assert desk.ticket(tid)["status"] == "new" and len(desk.inbox(CUSTOMER)) == before
    told = body_text(desk.last(ALICE))
    assert "#status waiting_customer: this is a reply to the mail of a colleague's internal note" in told
    assert "write #note above them" in told
    # Written out, #note with the status is the agent's choice (asked on the phone, say).
    desk.reply_to(note_mail, ALICE, "#note\n#status waiting_customer\nAsked on the phone.\n")
    assert desk.ticket(tid)["status"] == "waiting_customer" and desk.messages(tid)[-1]["internal"]
    assert desk.rows(recipient=CUSTOMER)[-1]["template"] == "requester/status_changed"
    assert "phone" not in body_text(desk.last(CUSTOMER))
    before = len(desk.inbox(CUSTOMER))

    desk.reply_to(note_mail, ALICE, "#propose\nA new toner fixes it.\n")
    assert desk.ticket(tid)["status"] == "waiting_customer" and len(desk.inbox(CUSTOMER)) == before
    told = body_text(desk.last(ALICE))
    assert "#propose: this is a reply to the mail of a colleague's internal note" in told
    assert "#note above" not in told and "#note keeps" not in told
    # Answered through the refusal's own Reply-To, the proposal reaches the customer.
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nA new toner fixes it.\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert "A new toner fixes it." in body_text(desk.last(CUSTOMER))


def test_words_sent_again_through_the_refusal_of_a_reply_to_a_note_stay_a_note(desk):
    """Refused for a typo, the agent did as told: replied to the refusal with the words again. They went to
    the customer, though they answered a colleague's note (a reply to its mail is a note)."""
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, BOB, "#note\nVIP customer, be careful.\n")
    note_mail = desk.last(ALICE)
    before = len(desk.inbox(CUSTOMER))
    desk.reply_to(note_mail, ALICE, "#priority hihg\nThanks Bob. They still owe us 4000 EUR.\n")
    refusal = desk.last(ALICE)
    assert "'hihg' is not a priority" in body_text(refusal)
    assert "a reply to this mail with words is an internal note too" in body_text(refusal)
    desk.reply_to(refusal, ALICE, "#priority high\nThanks Bob. They still owe us 4000 EUR.\n")
    assert desk.ticket(tid)["priority"] == "high"
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.messages(tid)[-1]["internal"] and "4000 EUR" in desk.messages(tid)[-1]["text"]


def test_a_colleague_not_on_a_ticket_who_writes_with_its_tag_is_told_how_to_write_on_it(desk):
    """Bob, not on Alice's ticket, wrote to support@ with its tag: a new ticket opened with Bob as its
    customer (PRODUCT.md: a mail that only carries someone else's tag opens its own ticket), and the ticket
    he named heard nothing, nor did Bob learn how to reach it."""
    from ticketd.store.tables import tickets

    tid = _ticket_with_agent(desk)
    desk.send(build_mail(BOB, "#note\nI know this customer: they have a service contract.\n",
                         subject=f"Re: [#{tid}] Printer"))
    [opened] = [t["id"] for t in desk.rows(tickets) if t["id"] != tid]
    assert "service contract" not in " ".join(m["text"] for m in desk.messages(tid))
    [told] = [m for m in desk.inbox(BOB) if "not on [#{}]".format(tid) in body_text(m)]
    assert f"opened ticket [#{opened}] of its own" in " ".join(body_text(told).split())
    assert {r["template"] for r in desk.rows(recipient=BOB)} >= {"agent/mail_not_applied", "requester/ticket_opened"}
    desk.reply_to(told, BOB, "#note\nI know this customer: they have a service contract.\n")
    assert desk.messages(tid)[-1]["internal"] and "service contract" in desk.messages(tid)[-1]["text"]
    assert len(desk.rows(tickets)) == 2
    # A customer's mail an agent passes on with the tag in its subject opens a ticket, and tells no one.
    told_before = len(desk.inbox("carol@example.com"))
    desk.send(build_mail("carol@example.com", "---------- Forwarded message ---------\nFrom: Dana <dana@example.org>\n"
                              "Subject: printer\n\nIt smokes.\n", subject=f"Fwd: [#{tid}] Printer"))
    assert len(desk.rows(tickets)) == 3
    assert not any("not on [#" in body_text(m) for m in desk.inbox("carol@example.com")[told_before:])


SIGNATURE = "Kind regards,\nAlice Smith\nSenior Support Engineer | Example Inc.\nPhone: +49 30 1234567\n"


def test_the_signature_a_note_and_a_reply_share_and_the_customers_own_words_hold_no_reply_back(desk):
    """The note guard refused every public reply signed as a note before it (Outlook's signature has no
    "-- ", so it stays in the note's text), and an answer quoting the customer's sentence a note quoted."""
    words = "The printer shows error E-1234 on startup every morning."
    tid = _ticket_with_agent(desk, body=f"{words}\n")
    _agent_mail(desk, tid, ALICE, f"#note\nAsking engineering about: {words}\nThey owe us 4000 EUR.\n\n{SIGNATURE}")
    before = len(desk.inbox(CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"Please update the firmware to 3.3.\n\n{SIGNATURE}")
    _agent_mail(desk, tid, ALICE, f"> {words}\n\nThat is the known firmware bug.\n\n{SIGNATURE}")
    assert len(desk.inbox(CUSTOMER)) == before + 2
    # The note's own words are still held back, pasted with its signature under a reply, and named.
    _agent_mail(desk, tid, ALICE, f"Sorry for the wait.\n\nThey owe us 4000 EUR.\n\n{SIGNATURE}")
    assert len(desk.inbox(CUSTOMER)) == before + 2
    assert "text of an internal note ('They owe us 4000 EUR.')" in " ".join(body_text(desk.last(ALICE)).split())
    # Nor is a postscript under the sign-off a signature.
    _agent_mail(desk, tid, ALICE, f"#note\nChecked.\n\n{SIGNATURE}P.S. The CFO is on their blacklist.\n")
    _agent_mail(desk, tid, ALICE, f"Sorry for the wait.\n\n{SIGNATURE}P.S. The CFO is on their blacklist.\n")
    assert len(desk.inbox(CUSTOMER)) == before + 2


def test_whom_an_agent_copies_on_a_public_reply_follows_the_ticket(desk):
    """An agent's Cc was dropped without a trace: the boss they copied heard nothing more of the ticket.
    As a customer's Cc (PRODUCT.md), they follow it; this reply reached them from the agent's server."""
    boss, colleague = "boss@cust.example.org", "carol@example.com"
    tid = _ticket_with_agent(desk)
    before = len(desk.inbox(CUSTOMER))
    _agent_mail(desk, tid, ALICE, "We are sending a technician.\n",
                cc=f"The Boss <{boss}>, Bob <{BOB}>, support@example.com")
    assert len(desk.inbox(CUSTOMER)) == before + 1 and desk.inbox(boss) == []   # not sent twice
    people = {p["email"]: (p["role"], p["name"]) for p in desk.rows(participants, ticket_id=tid)}
    assert people[boss] == ("follower", "The Boss")
    assert BOB not in people and "support@example.com" not in people   # an agent, our own address
    [joined] = desk.events(tid, "follower_added")
    assert joined["to_value"] == boss and f"in Cc of {ALICE}'s reply" in joined["reason"]
    _agent_mail(desk, tid, ALICE, "The technician comes on Monday.\n")
    assert "comes on Monday" in body_text(desk.last(boss))
    # A note, or commands alone, brings nobody in: the words stay with the agents.
    _agent_mail(desk, tid, ALICE, "#note\nCheck the warranty.\n", cc=colleague)
    _agent_mail(desk, tid, ALICE, "#priority high\n", cc=colleague)
    assert colleague not in {p["email"] for p in desk.rows(participants, ticket_id=tid)}


def test_a_note_handing_the_ticket_over_reaches_the_new_assignee_once(desk):
    """The note came in the assignment mail and again in a mail of its own on top, whose reply address
    makes an answer a note: the new assignee's answer to the customer stayed internal."""
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=BOB))
    _agent_mail(desk, tid, ALICE, "#note\n#assign bob@example.com\nPlease take this one, it is a fuser.\n")
    assert desk.ticket(tid)["assignee"] == BOB
    [assigned] = desk.rows(recipient=BOB)[before:]
    assert assigned["template"] == "agent/ticket_assigned"
    assert "it is a fuser" in body_text(desk.last(BOB))
    desk.reply_to(desk.last(BOB), BOB, "Which model do you have?\n")
    assert "Which model do you have?" in body_text(desk.last(CUSTOMER))


def test_desk_commands_on_a_ticket_point_to_the_desk_address(desk):
    """`#away 2w` on a ticket's mail was "not a command", with no word of where it is one."""
    from ingest.match import desk_address
    from ticketd.domain.absence import DESK_USAGE
    from ticketd.domain.commands import DESK_COMMANDS

    assert set(DESK_COMMANDS) == set(DESK_USAGE)
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#away 2w\n")
    told = " ".join(body_text(desk.last(ALICE)).split())
    desk_of_alice = desk_address(desk.app.signer, desk.app.settings.support_address, ALICE)
    assert (f"#away 2w: #away is about you, not a ticket: write it to your desk address, {desk_of_alice} "
            "(the Reply-To of your daily summary).") in told
    assert desk.ticket(tid)["status"] == "new"


@pytest.mark.parametrize("line, name", [("#away: 2w", "away"), ("# away 2w", "away"), ("#summary:", "summary")])
def test_a_desk_command_with_a_colon_or_spaced_on_a_ticket_is_refused_not_relayed(desk, line, name):
    """`#away: 2w` over "Bob will take over..." reached the customer word for word."""
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"{line}\nBob will take over while I am on holiday.\n")
    assert _customer_mail(desk, before) == [] and not desk.events(tid, "agent_replied")
    told = " ".join(body_text(desk.last(ALICE)).split())
    assert f"{line}: #{name} is about you, not a ticket: write it to your desk address" in told
    assert desk.ticket(tid)["status"] == "new"


def test_a_close_reason_under_note_stays_internal(any_db_desk):
    desk = any_db_desk
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "#note\n#close customer is a known fraudster, do not refund\n\n"
                                  "Checked with finance; closing.\n")
    assert desk.ticket(tid)["status"] == "closed"
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/ticket_closed"
    assert "is closed (closed by Alice)" in text                # told it closed, not why
    assert "fraudster" not in text and "finance" not in text
    [closed] = desk.events(tid, "closed_by_agent")
    assert "customer is a known fraudster, do not refund" in closed["reason"]   # kept for agents
    [note] = desk.events(tid, "internal_note")
    assert note["message_id"] == closed["message_id"] and desk.messages(tid)[-1]["internal"]
    assert not desk.events(tid, "agent_replied")


def test_a_public_close_reason_reaches_the_customer(desk):
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "#close duplicate of your other ticket\n")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/ticket_closed" and "is closed (duplicate of your other ticket)" in text


def test_a_close_reason_wrapped_by_the_mail_client_is_one_reason_in_one_mail(desk):
    """The wrapped half went to the customer as a reply of its own, and the closing mail cut the reason."""
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "#close Duplicate of the problem your colleague reported last week; we fixed\n"
                                  "it in release 4.2, which you already have.\n")
    assert desk.ticket(tid)["status"] == "closed"
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/ticket_closed"
    assert ("(Duplicate of the problem your colleague reported last week; we fixed it in release 4.2, which you "
            "already have.)") in " ".join(text.split())
    assert not desk.events(tid, "agent_replied")

    # Starting with a capital, the words are the reply, as before.
    desk.send(build_mail(CUSTOMER, "The scanner is on fire.\n", subject="Scanner"))
    tid = desk.ticket()["id"]
    agent = desk.assign(tid)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, agent, "#close Duplicate of the problem your colleague reported last week; we fixed\n"
                                  "It is in release 4.2, which you already have.\n")
    [(replied, reply), (closed, closing)] = _customer_mail(desk, before)
    assert "It is in release 4.2, which you already have." in reply and replied != "requester/ticket_closed"
    assert closed == "requester/ticket_closed" and "we fixed)" in " ".join(closing.split())


@pytest.mark.parametrize("commands, status", [
    (f"#postpone {YEAR}-01-15", "postponed"),
    (f"#dev carol PRJ-42 {YEAR}-01-15", "in_development"),
])
def test_a_date_given_under_note_stays_internal(any_db_desk, commands, status):
    desk = any_db_desk
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"#note\n{commands}\nThe vendor ships the part in January.\n")
    ticket = desk.ticket(tid)
    assert ticket["status"] == status
    assert (ticket["postponed_until"] or ticket["dev_due"]).date().isoformat() == f"{YEAR}-01-15"
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/status_changed"
    assert str(YEAR) not in text and "vendor" not in text and "PRJ-42" not in text
    [change] = desk.events(tid, "status")
    assert change["to_value"] == status and commands in change["reason"]
    # Without #note the customer is told the date, as before.
    _agent_mail(desk, tid, ALICE, "#status open\nBack on it.\n")
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"{commands}\n")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/status_changed" and f"{YEAR}-01-15" in text


@pytest.mark.parametrize("commands, says", [
    ("#status waiting_customer", "we need something from you to go on with ticket"),
    ("#status open", "is being worked on"),
])
def test_a_status_set_without_words_still_tells_the_customer(desk, commands, says):
    """The customer is never reminded of, or closed for, a question nobody told them about."""
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"{commands}\n")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/status_changed" and says in " ".join(text.split())
    # Under #note the customer hears of the status, never the note.
    _agent_mail(desk, tid, ALICE, "#status open\n" if commands != "#status open" else "#status waiting_customer\n")
    _agent_mail(desk, tid, ALICE, f"#note\n{commands}\nThey never read their mail.\n")
    [(template, text)] = _customer_mail(desk, before + 2)
    assert template == "requester/status_changed" and says in " ".join(text.split()) and "never read" not in text


# A reply under the quoted notification, with no "On ... wrote:" over the
# quote: the reply-stripper keeps the quote, so the commands follow it.
_BOTTOM_POSTED = {
    "bare_quote": "> {greeting}\n> From: cust@example.org\n\n{reply}\n",
    "interleaved": "> {greeting}\n\n{reply}\n\n> Reply to this mail\n",
    "whole_notification": "{quoted}\n\n{reply}\n",
}


def _answer_below_the_notification(desk, kind: str, reply: str) -> tuple[int, int]:
    """Alice answers her notification laid out as `kind`; the ticket and the customer's outbox rows before."""
    tid = _ticket_with_agent(desk)
    notification = desk.last(ALICE)
    quoted = "\n".join("> " + line for line in body_text(notification).splitlines())
    before = len(desk.rows(recipient=CUSTOMER))
    desk.reply_to(notification, ALICE, _BOTTOM_POSTED[kind].format(
        greeting=f"Alice, ticket [#{tid}] is now yours.", quoted=quoted, reply=reply))
    return tid, before


@pytest.mark.parametrize("kind", list(_BOTTOM_POSTED))
def test_bottom_posted_note_stays_internal(any_db_desk, kind):
    desk = any_db_desk
    tid, before = _answer_below_the_notification(desk, kind, "#note\nThe customer is a known fraudster.")
    assert _customer_mail(desk, before) == []
    assert [e["kind"] for e in desk.events(tid)][-1] == "internal_note"
    stored = desk.messages(tid)[-1]
    assert stored["internal"] and stored["text"] == "The customer is a known fraudster."
    assert desk.ticket(tid)["status"] == "new"                  # a note is not a response


@pytest.mark.parametrize("kind", list(_BOTTOM_POSTED))
def test_bottom_posted_reply_relays_only_the_agents_lines(any_db_desk, kind):
    desk = any_db_desk
    tid, before = _answer_below_the_notification(desk, kind, "We are replacing the printer.\n\nIt ships on Monday.")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/agent_reply"
    assert "We are replacing the printer.\n\nIt ships on Monday." in text.replace("\r\n", "\n")
    assert "is now yours" not in text and "Reply to this mail" not in text and "\n>" not in text
    assert desk.events(tid, "agent_replied") and desk.ticket(tid)["status"] == "open"


def test_interleaved_reply_keeps_the_agents_lines_in_order(desk):
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "> From:     cust@example.org\n\nFirst, unplug it.\n\n"
                                  "> Reply to this mail to answer the customer.\n\nThen call us.\n")
    [(_, text)] = _customer_mail(desk, before)
    # Answers between quotes go under the quote they answer only when the customer has seen that quote
    # (tests/test_agent_inline_reply.py); these are the notice's own lines.
    relayed = "First, unplug it.\n\nThen call us."
    assert relayed in text.replace("\r\n", "\n")
    assert desk.messages(tid)[-1]["text"] == relayed


def test_agents_addresses_in_a_relayed_reply_read_as_the_support_address(any_db_desk):
    """PRODUCT.md: customers never see agents' private addresses, also not in a signature without
    the `-- ` line (Outlook's) or a colleague's address the agent typed."""
    desk = any_db_desk
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, "Please restart it.\nOr ask Bob (BOB@example.com).\n\nAlice Smith\n"
                                  "Support Engineer\nalice@example.com | +1 555 0100\n"
                                  "See also alice@example.com.au and malice@example.com\n")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/agent_reply"
    assert "alice@example.com\n" not in text and "alice@example.com |" not in text and BOB not in text.lower()
    assert "Or ask Bob (support@example.com)." in text and "support@example.com | +1 555 0100" in text
    # Only agents' own addresses: someone else's, or one that merely starts like one, is left alone.
    assert "alice@example.com.au and malice@example.com" in text
    assert "alice@example.com | +1 555" in desk.messages(tid)[-1]["text"]   # stored as the agent wrote it


@pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\ufeff"])
def test_a_command_after_unicode_whitespace_is_a_command(any_db_desk, space):
    desk = any_db_desk
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _agent_mail(desk, tid, ALICE, f"{space}#note{space}The customer is a known fraudster.\n")
    assert _customer_mail(desk, before) == []
    assert desk.events(tid)[-1]["kind"] == "internal_note"
    assert desk.messages(tid)[-1]["text"] == "The customer is a known fraudster."
    _agent_mail(desk, tid, ALICE, f"{space}#close\n")
    assert desk.ticket(tid)["status"] == "closed"
    assert [template for template, _ in _customer_mail(desk, before)] == ["requester/ticket_closed"]
    assert "#close" not in _customer_mail(desk, before)[0][1]
    assert desk.events(tid, "closed_by_agent")


# ---------------------------------------------------------------- spoofing


def test_forged_agent_from_without_signed_address(desk):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\nPlease send logs.\n")  # alice is a participant now
    before = desk.ticket(tid)
    outbox_before = len(desk.rows())
    # From alice, to the plain support address, with the tag: threads, but has no authority.
    desk.send(build_mail(ALICE, "#status closed\n#note internal?\n", subject=f"Re: [#{tid}] Printer"))
    after = desk.ticket(tid)
    assert after["status"] == before["status"] == "waiting_customer"
    stored = desk.messages(tid)[-1]
    assert stored["author_role"] == "customer" and not stored["internal"]
    assert stored["text"].startswith("#status closed")
    new_rows = desk.rows()[outbox_before:]
    # Alice is the assignee and the claimed sender: she is told the mail did nothing, and why (a forger
    # shows up there too), instead of getting her own words as a customer's reply.
    assert [(r["recipient"], r["template"]) for r in new_rows] == [(ALICE, "agent/mail_not_applied")]
    told = body_text(desk.last(ALICE))
    assert "did not go to the customer" in told and "your own reply address" in told
    assert desk.last(ALICE)["Reply-To"] == desk.agent_address(tid, ALICE)
    event = desk.events(tid, "customer_replied")[-1]
    assert "did not come through that agent's signed reply address" in event["reason"]


def test_a_forged_agent_from_brings_no_one_in_cc_onto_the_ticket(desk):
    """Anyone could follow any ticket: a mail From its agent (forged; no signed address needed) with the
    tag joined its Cc as followers, who then got the agent's real replies."""
    spy = "spy@evil.example"
    tid = _ticket_with_agent(desk)
    desk.send(build_mail(ALICE, "Please copy my colleague.\n", subject=f"Re: [#{tid}] Printer", cc=spy))
    assert spy not in {p["email"] for p in desk.rows(participants, ticket_id=tid)}
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/mail_not_applied"
    _agent_mail(desk, tid, ALICE, "Your contract number is 4711.\n")
    assert "4711" in body_text(desk.last(CUSTOMER)) and desk.inbox(spy) == []


def test_another_agents_signed_address_gives_no_authority(desk):
    tid = _ticket_with_agent(desk)
    desk.send(build_mail(BOB, "#status closed\nIt is fixed now.\n", to=desk.agent_address(tid, ALICE),
                         subject="Re: x"))
    assert desk.ticket(tid)["status"] == "new"
    assert "another person's signed reply address" in desk.events(tid, "customer_replied")[-1]["reason"]
    # Bob thinks he answered: he is told it went nowhere, with his words, and the way to answer.
    [row] = desk.rows(recipient=BOB)
    assert row["template"] == "agent/mail_not_applied"
    told = desk.last(BOB)
    assert "another person's reply address" in body_text(told) and "It is fixed now." in body_text(told)
    assert told["Reply-To"] == desk.agent_address(tid, BOB)
    # Alice, the assignee, still sees what came in on her ticket.
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/customer_replied"
    # Replying to what he was told works: his own address carries his authority.
    desk.reply_to(told, BOB, "#status closed\nIt is fixed now.\n")
    assert desk.ticket(tid)["status"] == "closed"



def test_the_customers_reply_address_gives_an_agent_no_authority(desk):
    tid = _ticket_with_agent(desk)
    desk.send(build_mail(ALICE, "#close\n", to=desk.agent_address(tid, None), subject="Re: x"))
    assert desk.ticket(tid)["status"] == "new"
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/mail_not_applied"


def test_an_agent_writing_as_a_customer_is_not_told(desk):
    # An agent who asks support for help is the requester of that ticket: their mail is a customer's.
    desk.send(build_mail(BOB, "My laptop will not boot.\n"))
    tid = desk.ticket()["id"]
    desk.send(build_mail(BOB, "Still broken.\n", subject=f"Re: [#{tid}] Printer on fire"))
    assert [r["template"] for r in desk.rows(recipient=BOB)] == ["requester/ticket_opened"]
    assert len(desk.messages(tid)) == 2


def test_an_agents_automatic_mail_is_not_answered(desk):
    tid = _ticket_with_agent(desk)
    msg = build_mail(BOB, "I am out of office.\n", to=desk.agent_address(tid, ALICE), subject="Re: x")
    msg["Auto-Submitted"] = "auto-replied"
    desk.send(msg)
    assert desk.rows(recipient=BOB) == []


def test_several_from_addresses_have_no_authority(desk):
    tid = _ticket_with_agent(desk)
    msg = build_mail(ALICE, "#close\n", to=desk.agent_address(tid, ALICE), subject="Re: x")
    msg.replace_header("From", "Alice <alice@example.com>, Mallory <mallory@example.net>")
    desk.send(msg)
    assert desk.ticket(tid)["status"] == "new"


def test_authentication_results_required(make_app, sqlite_url):
    extra = "agent_auth:\n  require_authentication_results: true\n  trusted_authserv_ids: [mx.example.com]\n"
    for desk in open_desk(make_app, sqlite_url, extra=extra):
        tid = _ticket_with_agent(desk)
        # Topmost header from someone else; a lower one claims our id: ignored.
        msg = build_mail(ALICE, "#priority high\n", to=desk.agent_address(tid, ALICE), subject="Re: x")
        msg["Authentication-Results"] = "evil.example.net; dkim=pass header.d=example.com"
        msg["Authentication-Results"] = "mx.example.com; dkim=pass header.d=example.com"
        desk.send(msg)
        assert desk.ticket(tid)["priority"] == "normal"
        msg = build_mail(ALICE, "#priority high\n", to=desk.agent_address(tid, ALICE), subject="Re: x")
        msg["Authentication-Results"] = "mx.example.com; dkim=fail header.d=example.com; dmarc=none"
        desk.send(msg)
        assert desk.ticket(tid)["priority"] == "normal"
        msg = build_mail(ALICE, "#priority high\n", to=desk.agent_address(tid, ALICE), subject="Re: x")
        msg["Authentication-Results"] = ("mx.example.com (our MTA); spf=pass smtp.mailfrom=example.com; "
                                         "dkim=pass (2048-bit key) header.d=example.com; dmarc=pass "
                                         "header.from=example.com")
        desk.send(msg)
        assert desk.ticket(tid)["priority"] == "high"


# ---------------------------------------------------------------- the authority decision, pure

FP = address_fingerprint(ALICE)


@pytest.mark.parametrize("kw, agent", [
    (dict(from_addr=ALICE, from_count=1, reply_fingerprint=FP), ALICE),
    (dict(from_addr="Alice@Example.com", from_count=1, reply_fingerprint=FP), ALICE),
    (dict(from_addr=ALICE, from_count=1, reply_fingerprint=None), None),
    (dict(from_addr=ALICE, from_count=1, reply_fingerprint=address_fingerprint(BOB)), None),
    (dict(from_addr=None, from_count=2, reply_fingerprint=FP), None),
    (dict(from_addr=ALICE, from_count=2, reply_fingerprint=FP), None),
    (dict(from_addr="mallory@example.net", from_count=1, reply_fingerprint=address_fingerprint("mallory@example.net")),
     None),
    (dict(from_addr=ALICE, from_count=1, reply_fingerprint=FP,
          proof=vouched_for(None, ["mx.example.com"], ALICE)), None),
    (dict(from_addr=ALICE, from_count=1, reply_fingerprint=FP,
          proof=vouched_for("mx.example.com 1; dmarc=pass header.from=example.com", ["mx.example.com"], ALICE)),
     ALICE),
])
def test_agent_authority(kw, agent):
    verdict = agent_authority(agent_emails=[ALICE, BOB], **kw)
    assert verdict.agent == agent
    # Advice goes only to an agent named in From whose mail failed: never to a stranger or several.
    claims_agent = kw["from_count"] == 1 and (kw["from_addr"] or "").lower() in (ALICE, BOB)
    assert (verdict.advice is not None) == (claims_agent and agent is None)


@pytest.mark.parametrize("header, passes", [
    ("mx.example.com; dkim=pass header.d=example.com", True),
    ("MX.example.com; dkim=pass header.i=@mail.example.com", True),
    ("mx.example.com; dkim=pass header.d=evil.example.net", False),
    ("mx.example.com; dmarc=pass (p=reject) header.from=example.com", True),
    ("mx.example.com; dmarc=fail header.from=example.com", False),
    ("mx.example.com; spf=pass smtp.mailfrom=example.com", False),
    ("mx.example.com (comment; dkim=pass header.d=example.com); none", False),
    ("other.example.com; dkim=pass header.d=example.com", False),
    ("", False),
])
def test_authentication_passes(header, passes):
    assert authentication_passes(header, ["mx.example.com"], ALICE)[0] is passes


def test_a_reply_with_only_the_quoted_notification_is_not_relayed(desk):
    """Send pressed before writing: the customer would get "On ..., Support wrote:" as the first response."""
    customer, agent = "cust@example.org", "alice@example.com"
    desk.send(build_mail(customer, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    told = desk.last(agent)
    quoted = "".join(f"> {line}\n" for line in body_text(told).splitlines())
    before = len(desk.inbox(customer))
    desk.reply_to(told, agent, f"On Monday, Support <support@example.com> wrote:\n{quoted}")
    assert len(desk.inbox(customer)) == before
    ticket = desk.ticket(tid)
    assert (ticket["status"], ticket["first_response_at"]) == ("new", None)
    answer = body_text(desk.last(agent))
    assert "no text of its own" in answer and "nothing was sent to the customer" in answer
    assert desk.events(tid, "commands_rejected")


def test_a_command_under_a_greeting_is_neither_applied_nor_sent_to_the_customer(desk):
    customer, agent = "cust@example.org", "alice@example.com"
    desk.send(build_mail(customer, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    before = len(desk.inbox(customer))
    desk.reply_to(desk.last(agent), agent, "Hi team,\n#close\nthis is spam.\n")
    assert len(desk.inbox(customer)) == before
    assert desk.ticket(tid)["status"] == "new"
    assert "'#close' below other text is not read as a command" in body_text(desk.last(agent))


def _passed_from_alice_to_bob(desk):
    """Alice is given the ticket, then passes it to Bob: its id, Alice's old notice, and how much Bob has had."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    old_notice = desk.last(ALICE)
    desk.reply_to(old_notice, ALICE, "#assign bob@example.com\n")
    assert desk.ticket(tid)["assignee"] == BOB
    return tid, old_notice, len(desk.inbox(BOB))


def test_the_assignee_hears_when_a_colleague_answers_or_closes_their_ticket(desk):
    """Alice, reassigned away, still answers from her old notice: Bob, whose ticket it is, is told."""
    alice, bob = ALICE, BOB
    tid, old_notice, told = _passed_from_alice_to_bob(desk)
    desk.reply_to(old_notice, alice, "#status waiting_customer\nWhich model is it?\n")
    [mail] = desk.inbox(bob)[told:]
    text = body_text(mail)
    assert str(mail["Subject"]) == f"[#{tid}] Alice worked on your ticket: Printer on fire"
    assert "#status waiting_customer" in text and "Which model is it?" in text
    desk.reply_to(old_notice, alice, "#note Bob, I asked for the model.\n")
    assert "internal note" in body_text(desk.last(bob))   # a note goes as a note, not twice
    assert len(desk.inbox(bob)) == told + 2
    desk.reply_to(desk.last(bob), bob, "#priority high\n")    # the assignee's own commands: no notice to himself
    assert len(desk.inbox(bob)) == told + 2


# ---------------------------------------------------------------- a colon, or spaces after '#'


def _gmail_reply(desk, tid, agent, text):
    """The agent answers their latest notice as Gmail lays it out: the text, then the quoted notice."""
    notice = desk.last(agent)
    quoted = "\n".join("> " + line for line in body_text(notice).splitlines())
    desk.reply_to(notice, agent, f"{text}\n\nOn Sat, Jun 1, 2030 at 12:00 PM Support <support@example.com> wrote:\n"
                                 f"{quoted}\n")


@pytest.mark.parametrize("text, stored", [
    ("#note:\n\nVIP customer, internal: credit limit 5000.", "VIP customer, internal: credit limit 5000."),
    ("# note\n\nsecret VIP credit limit", "secret VIP credit limit"),
    ("#note: VIP customer, internal: credit limit 5000.", "VIP customer, internal: credit limit 5000."),
])
def test_a_note_written_with_a_colon_or_spaces_never_reaches_the_customer(desk, text, stored):
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, BOB, "#priority high\n")            # Bob takes part too
    before = len(desk.rows(recipient=CUSTOMER))
    _gmail_reply(desk, tid, ALICE, text)
    assert _customer_mail(desk, before) == []
    assert desk.ticket(tid)["status"] == "new"                  # a note is no first response
    assert desk.events(tid)[-1]["kind"] == "internal_note"
    assert desk.messages(tid)[-1]["internal"] and desk.messages(tid)[-1]["text"] == stored
    assert desk.rows(recipient=BOB)[-1]["template"] == "agent/internal_note"
    assert stored in body_text(desk.last(BOB))


def test_a_colon_command_applies_and_only_the_text_below_reaches_the_customer(desk):
    tid = _ticket_with_agent(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    _gmail_reply(desk, tid, ALICE, "#priority: urgent\n#status: waiting_customer\n\nWhich model is it?")
    ticket = desk.ticket(tid)
    assert (ticket["priority"], ticket["status"]) == ("urgent", "waiting_customer")
    [(template, text)] = _customer_mail(desk, before)
    assert template == "requester/agent_reply" and "Which model is it?" in text
    assert "#priority" not in text and "#status" not in text


@pytest.mark.parametrize("text, line", [
    ("#note.\n\nVIP customer, internal: credit limit 5000.", "#note."),
    ("## Note\n\nVIP customer, internal: credit limit 5000.", "## Note"),
    ("#notes: VIP customer, internal: credit limit 5000.", "#notes: VIP customer, internal: credit limit 5000."),
])
def test_a_top_line_like_a_command_that_cannot_be_read_holds_the_whole_mail_back(desk, text, line):
    tid = _ticket_with_agent(desk)
    before_ticket = desk.ticket(tid)
    before = len(desk.rows(recipient=CUSTOMER))
    _gmail_reply(desk, tid, ALICE, text)
    assert _customer_mail(desk, before) == []
    after = desk.ticket(tid)
    assert {k: after[k] for k in ("status", "first_response_at", "updated_at")} == {
        k: before_ticket[k] for k in ("status", "first_response_at", "updated_at")}
    assert desk.rows(recipient=ALICE)[-1]["template"] == "agent/command_rejected"
    told = body_text(desk.last(ALICE))
    assert f"{line}: cannot be read as a command" in told and "nothing was sent" in told
    assert desk.events(tid, "commands_rejected")


def test_assign_by_the_agents_name(desk):
    tid = _ticket_with_agent(desk)
    _gmail_reply(desk, tid, ALICE, "#assign Bob\n\nBob will help you.")
    assert desk.ticket(tid)["assignee"] == BOB
    assert desk.last(BOB)["Reply-To"] == desk.agent_address(tid, BOB)
    assert "Bob will help you." in body_text(desk.last(CUSTOMER))
    [assigned] = [e for e in desk.events(tid) if e["to_value"] == BOB]
    assert assigned["actor"] == ALICE


def test_unfollow_takes_a_follower_off_before_the_reply_it_comes_with(desk, tmp_path):
    """A follower added by mistake (a stranger, a colleague who left) got every public reply, with no way to stop it."""
    from tests.cli import cli_ok, run_cli

    colleague, other = "colleague@example.org", "other@example.org"
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, cc=f"{colleague}, {other}")
    _agent_mail(desk, tid, ALICE, f"#unfollow {CUSTOMER}\nWe are on it.\n")
    assert desk.ticket(tid)["status"] == "new" and len(desk.inbox(colleague)) == 0
    said = body_text(desk.last(ALICE))
    assert f"{CUSTOMER} is not following this ticket (its followers: {colleague}, {other})" in said
    assert "Write it as: #unfollow <a follower's address>" in said

    _agent_mail(desk, tid, ALICE, f"#unfollow <{colleague.upper()}>\nWe are on it.\n")
    assert "We are on it." in body_text(desk.last(CUSTOMER)) and "We are on it." in body_text(desk.last(other))
    assert desk.inbox(colleague) == []
    [removed] = desk.events(tid, "follower_removed")
    assert (removed["actor"], removed["from_value"]) == (ALICE, colleague) and "#unfollow by" in removed["reason"]

    # The admin's way, from the command line.
    config = tmp_path / "ticketd.yaml"
    done = run_cli(config, "tickets", "unfollow", str(tid), CUSTOMER)
    assert done.returncode == 1 and "is its requester, who always gets its replies" in done.stderr
    assert f"no longer follows ticket [#{tid}]" in cli_ok(config, "tickets", "unfollow", str(tid), other)
    assert [p["email"] for p in desk.rows(participants, ticket_id=tid) if p["role"] == "follower"] == []
    assert desk.events(tid, "follower_removed")[-1]["actor"] == "admin:cli"


def test_someone_taken_off_does_not_follow_again_by_writing_to_the_ticket(desk):
    """The customers' reply address on every copy a follower had put them back on the ticket by writing."""
    colleague = "colleague@example.org"
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE, cc=colleague)
    _agent_mail(desk, tid, ALICE, "We are on it.\n")
    their_copy = desk.last(colleague)
    _agent_mail(desk, tid, ALICE, f"#unfollow {colleague}\n")
    desk.reply_to(their_copy, colleague, "Please keep me posted, and copy boss@example.org.\n",
                  cc="boss@example.org")
    people = {p["email"] for p in desk.rows(participants, ticket_id=tid)}
    assert colleague not in people and "boss@example.org" not in people
    [kept] = desk.events(tid, "outsider_kept")
    assert f"{colleague} was taken off the ticket's followers by {ALICE}" in kept["reason"]
    told = " ".join(body_text(desk.last(ALICE)).split())
    assert f"[{colleague} was taken off this ticket's followers by {ALICE} and wrote again" in told
    _agent_mail(desk, tid, ALICE, "The technician comes at 3pm.\n")
    assert "3pm" in body_text(desk.last(CUSTOMER)) and "3pm" not in body_text(desk.last(colleague))
    # An agent's #follow puts them back: their mail joins as before.
    _agent_mail(desk, tid, ALICE, f"#follow {colleague}\nCopying you again.\n")
    desk.reply_to(desk.last(colleague), colleague, "Thanks.\n")
    assert len(desk.events(tid, "outsider_kept")) == 1
    assert colleague in {p["email"] for p in desk.rows(participants, ticket_id=tid)}


def test_follow_adds_an_address_that_gets_the_reply_and_may_write_to_the_ticket(desk, tmp_path):
    """A customer writing from a second address was an outsider on their own ticket: with the tag in the
    subject it opened a ticket of its own (PRODUCT.md threading 3: only participants match by tag)."""
    from tests.cli import cli_ok, run_cli

    home = "cust.home@example.net"
    tid = _ticket_with_agent(desk)
    _agent_mail(desk, tid, ALICE, f"#follow <mailto:{home.upper()}>\nI have copied your home address.\n")
    assert "I have copied your home address." in body_text(desk.last(home))   # this reply included
    assert "I have copied your home address." in body_text(desk.last(CUSTOMER))
    [added] = desk.events(tid, "follower_added")
    assert (added["actor"], added["to_value"]) == (ALICE, home) and "#follow by" in added["reason"]

    desk.send(build_mail(home, "It caught fire again.\n", subject=f"Re: [#{tid}] Printer"))
    assert desk.rows(tickets_table) == [desk.ticket(tid)]   # no second ticket
    assert [m["matched_by"] for m in desk.messages(tid)][-1] == "subject_tag"

    # Following changes nothing for someone on the ticket already: the agent is told, nothing else happens.
    _agent_mail(desk, tid, ALICE, f"#follow {CUSTOMER} {home}\n")
    said = body_text(desk.last(ALICE))
    assert f"{CUSTOMER} is the ticket's requester, who gets its replies already" in said
    assert f"{home} follows the ticket already" in said
    assert len(desk.events(tid, "follower_added")) == 1

    # Agents and ticketd's own addresses are refused, and the whole mail with them.
    for named, why in ((BOB, f"{BOB} is an agent"), ("support+x@example.com", "one of ticketd's own addresses"),
                       ("", "#follow needs the address of whom to add")):
        before = len(desk.inbox(CUSTOMER))
        _agent_mail(desk, tid, ALICE, f"#follow {named}\nSee above.\n")
        said = body_text(desk.last(ALICE))
        assert why in said and "Write it as: #follow <an address>" in said
        assert len(desk.inbox(CUSTOMER)) == before
    _agent_mail(desk, tid, ALICE, f"#follow {home}\n#unfollow {home}\nSee above.\n")
    assert f"{home} is named by both #follow and #unfollow" in body_text(desk.last(ALICE))

    # The admin's way, from the command line.
    config = tmp_path / "ticketd.yaml"
    other = "colleague@example.org"
    assert f"{other} follows ticket [#{tid}]" in cli_ok(config, "tickets", "follow", str(tid), f"<{other}>")
    assert desk.events(tid, "follower_added")[-1]["actor"] == "admin:cli"
    for named, why in ((other, "follows the ticket already"), (ALICE, "is an agent"),
                       ("john smith", "is not an email address")):
        done = run_cli(config, "tickets", "follow", str(tid), named)
        assert done.returncode == 1 and why in done.stderr
    followers = [p["email"] for p in desk.rows(participants, ticket_id=tid) if p["role"] == "follower"]
    assert followers == [home, other]


def test_the_assignee_hears_when_a_colleague_takes_their_ticket_and_the_history_names_the_mail(desk):
    """Bob holds the ticket; Alice, from her old notice, takes it back: Bob is told it is no longer his."""
    alice, bob = ALICE, BOB
    tid, old_notice, told = _passed_from_alice_to_bob(desk)
    desk.reply_to(old_notice, alice, "#assign alice@example.com\nI know this printer.\n")
    assert desk.ticket(tid)["assignee"] == alice
    [mail] = desk.inbox(bob)[told:]
    assert str(mail["Subject"]) == f"[#{tid}] Alice took your ticket: Printer on fire"
    text = body_text(mail)
    assert "Alice took ticket" in text and "#assign alice@example.com" in text and "It is Alice's now" in text
    assert "I know this printer." in text and "stays yours" not in text
    taken = desk.events(tid, "assigned")[-1]
    assert (taken["from_value"], taken["to_value"]) == (bob, alice)
    assert taken["message_id"] == desk.messages(tid)[-1]["id"]
    # Bob takes it back from his own older notice: now Alice is the one told.
    desk.reply_to(desk.last(bob), bob, "#assign bob@example.com\n")
    assert str(desk.last(alice)["Subject"]) == f"[#{tid}] Bob took your ticket: Printer on fire"
    # A colleague's reply that leaves the ticket where it is still says it stays theirs.
    desk.reply_to(desk.last(alice), alice, "#priority high\n")
    assert "stays yours" in body_text(desk.last(bob))
