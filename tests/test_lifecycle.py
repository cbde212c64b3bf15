"""The whole lifecycle by mail, end to end: SMTP in, pipeline, outbox, sink, replies (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def test_new_to_rated(desk):
    customer, agent = "cust@example.org", "alice@example.com"
    desk.send(build_mail(customer, "Type: bug\nReproducible: always\n\nThe printer is on fire.\n"))
    ticket = desk.ticket()
    tid = ticket["id"]
    assert (ticket["status"], ticket["type"], ticket["reproducible"]) == ("new", "bug", "always")
    assert desk.assign(tid) == agent  # round robin in `support` starts with alice

    # The agent asks for data: first response, status set by command.
    assigned = desk.last(agent)
    assert desk.agent_address(tid, agent) == str(assigned["Reply-To"])
    ask = desk.reply_to(assigned, agent, "#status waiting_customer\n\nCould you send the printer's logs?\n\n"
                                           "-- \nAlice\n", name="Alice")
    ticket = desk.ticket(tid)
    assert ticket["status"] == "waiting_customer"
    assert ticket["first_response_at"] is not None
    relayed = desk.last(customer)
    assert body_text(relayed).startswith("Could you send the printer's logs?")
    assert "#status" not in body_text(relayed)
    assert relayed["Auto-Submitted"] == "auto-replied"   # PRODUCT.md: everything ticketd sends is marked
    assert "Alice" in str(relayed["From"]) and "support@example.com" in str(relayed["From"])
    assert f"[#{tid}]" in str(relayed["Subject"])
    change = desk.events(tid, "status")[-1]
    assert (change["actor"], change["from_value"], change["to_value"]) == (agent, "new", "waiting_customer")
    assert ask["Message-ID"].strip("<>") in change["reason"] and change["message_id"] is not None

    # The customer answers: back to open, and the agent hears of it.
    desk.reply_to(relayed, customer, "Here are the logs: paper jam at 451 degrees.\n")
    assert desk.ticket(tid)["status"] == "open"
    told = desk.last(agent)
    assert "paper jam at 451 degrees" in body_text(told)

    # Proposal, rejection with a reason, second proposal, acceptance.
    desk.reply_to(told, agent, "#propose\nRestart the printer.\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    proposal = desk.last(customer)
    assert "Restart the printer." in body_text(proposal) and "accept" in body_text(proposal)
    desk.reply_to(proposal, customer, "It is still burning after the restart.\n")
    assert desk.ticket(tid)["status"] == "open"
    rejected = desk.events(tid, "rejected")[-1]
    assert (rejected["from_value"], rejected["to_value"], rejected["actor"]) == ("solution_proposed", "open", customer)
    assert "still burning after the restart" in rejected["reason"]

    desk.reply_to(desk.last(agent), agent, "#propose\n\nReplace the fuser unit.\n")
    proposal = desk.last(customer)
    assert "Replace the fuser unit." in body_text(proposal)
    desk.reply_to(proposal, customer, "Yes!\n\nThank you, it works.\n")
    ticket = desk.ticket(tid)
    assert ticket["status"] == "closed" and ticket["closed_at"] is not None
    accepted = desk.events(tid, "accepted")[-1]
    assert (accepted["from_value"], accepted["to_value"], accepted["actor"]) == ("solution_proposed", "closed",
                                                                                customer)
    closing = desk.last(customer)
    assert "three numbers" in body_text(closing)

    # The rating is stored and does not reopen.
    desk.reply_to(closing, customer, "5 4 5\n")
    assert desk.ticket(tid)["status"] == "closed"
    [rating] = desk.ratings(tid)
    assert (rating["usefulness"], rating["speed"], rating["politeness"]) == (5, 4, 5)
    assert desk.events(tid, "rated")[-1]["to_value"] == "5 4 5"

    # A later reply that is not a rating reopens.
    desk.reply_to(closing, customer, "Sorry, it caught fire again.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "reopened")[-1]["from_value"] == "closed"
    assert "this reply opened it again" in body_text(desk.last(agent))

    # Every event says who, what and (for mail) through which mail.
    for event in desk.events(tid):
        assert event["actor"] and event["kind"]
        if event["kind"] in ("status", "accepted", "rejected", "reopened", "rated", "agent_replied",
                             "customer_replied", "closed_by_agent"):
            assert event["message_id"] is not None and "mail <" in event["reason"], event


@pytest.mark.parametrize("reply, rating", [
    ("Speed: 1\nUsefulness: 5\nPoliteness: 4\n", (5, 1, 4)),   # labels say where each number goes
    ("\uff15 \uff14 \uff15\n", (5, 4, 5)),                        # full-width digits from a CJK input method
    ("Speed: 5\nSpeed: 4\nPoliteness: 5\n", None),              # contradictory labels: a person reads it
    ("Hi,\n\n5 4 5\n\nThank you,\nAnna\n", (5, 4, 5)),              # courtesy around the numbers
    ("5 5 5\nThanks, but the tray jams now.\n", None),            # more to say: reopened
])
def test_rating_by_labels_and_full_width_digits(desk, reply, rating):
    """PRODUCT.md: a reply with three numbers (usefulness, speed, politeness) is stored as the rating."""
    customer, agent = "cust@example.org", "alice@example.com"
    desk.send(build_mail(customer, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "#close\nReplaced the fuser.\n")
    desk.reply_to(desk.last(customer), customer, reply)
    stored = [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)]
    if rating is None:
        assert stored == [] and desk.ticket(tid)["status"] == "open"
    else:
        assert stored == [rating] and desk.ticket(tid)["status"] == "closed"
        assert desk.events(tid, "rated")[-1]["to_value"] == " ".join(map(str, rating))


def test_agent_close_and_reopen_statuses(desk):
    """#close is logged as closed by the agent, sends the rating request, and a reply reopens."""
    customer, agent = "ann@example.org", "alice@example.com"
    desk.send(build_mail(customer, "Where is my invoice copy?\n", subject="Copy please"))
    tid = desk.ticket()["id"]
    to_agent = desk.agent_address(tid, agent)
    desk.send(build_mail(agent, "#close duplicate of an older request\n\nAnswered in your other ticket.\n",
                         to=to_agent, subject=f"Re: [#{tid}] Copy please"))
    ticket = desk.ticket(tid)
    assert ticket["status"] == "closed"
    [closed] = desk.events(tid, "closed_by_agent")
    assert closed["actor"] == agent and closed["from_value"] == "new"
    assert "duplicate of an older request" in closed["reason"]
    templates = [r["template"] for r in desk.rows(recipient=customer)]
    assert templates[-2:] == ["requester/agent_reply", "requester/ticket_closed"]


def _proposed(desk, customer, agent, **first):
    desk.send(build_mail(customer, "The printer is on fire.\n", **first))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "#propose\nRestart the printer.\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    return tid


def test_only_the_requester_accepts_a_proposal_and_a_follower_may_object(desk):
    """PRODUCT.md: "Only the customer accepts a proposed solution"; a Cc'd colleague's objection reopens."""
    customer, colleague, agent = "cust@example.org", "boss@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent, cc=colleague)
    proposal = desk.inbox(colleague)[-1]
    assert "Restart the printer." in body_text(proposal)

    desk.reply_to(proposal, colleague, "OK\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.events(tid, "accepted") == []
    told = desk.last(agent)
    assert "only the requester accepts a proposed solution" in body_text(told)
    assert "boss@example.org" in body_text(told)

    desk.reply_to(proposal, colleague, "It is still burning here.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "rejected")[-1]["actor"] == colleague

    desk.reply_to(desk.last(agent), agent, "#propose\nReplace the fuser.\n")
    desk.reply_to(desk.last(customer), customer, "ok\n")
    assert desk.ticket(tid)["status"] == "closed"


def test_a_reply_with_only_the_quoted_proposal_leaves_it_standing(desk):
    """Its text would be the reason (PRODUCT.md), and it has none: a send pressed by mistake."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent)
    proposal = desk.last(customer)
    quoted = "".join(f"> {line}\n" for line in body_text(proposal).splitlines())
    desk.reply_to(proposal, customer, f"On Monday, Support wrote:\n{quoted}")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.events(tid, "rejected") == []
    assert "the reply has no text of its own" in body_text(desk.last(agent))

    screenshot = build_mail(customer, f"On Monday, Support wrote:\n{quoted}", subject="Re: " + str(proposal["Subject"]),
                            to=str(proposal["Reply-To"] or proposal["From"]), in_reply_to=str(proposal["Message-ID"]))
    screenshot.add_attachment(b"\x89PNG fire", maintype="image", subtype="png", filename="still-burning.png")
    desk.send(screenshot)
    assert desk.ticket(tid)["status"] == "open"
    assert "(no text; 1 file(s))" in desk.events(tid, "rejected")[-1]["reason"]
