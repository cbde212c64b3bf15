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
    ("5 5 5\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234\n", (5, 5, 5)),   # a signature without "-- "
    ("5-4-5\n", (5, 4, 5)), ("5/4/5\n", (5, 4, 5)),                # dashes and slashes between them
    # Everyday shapes, each of which reopened the ticket and lost the rating.
    ("5 5 4 \U0001F60A\n", (5, 5, 4)), ("Rating: 5 5 4\n", (5, 5, 4)), ("5, 5 and 4\n", (5, 5, 4)),
    ("Usefulness - 5\nSpeed - 5\nPoliteness - 4\n", (5, 5, 4)),
])
def test_rating_by_labels_and_full_width_digits(desk, reply, rating):
    """PRODUCT.md: a reply with three numbers (usefulness, speed, politeness) is stored as the rating."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _closed_by_agent(desk, customer, agent)
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


def test_a_rating_given_with_the_acceptance_is_stored_and_thanked_for_not_asked_again(desk):
    """A customer who accepts and rates in one reply ("Yes, thanks!" over "5 5 4") was asked for the
    numbers they had just given: the closing mail now thanks for them, the rating counts, and a later
    rating still replaces it."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent)
    desk.reply_to(desk.last(customer), customer, "Yes, thanks!\n5 5 4\n\nDana\n")
    assert desk.ticket(tid)["status"] == "closed"
    [rating] = desk.ratings(tid)
    assert (rating["usefulness"], rating["speed"], rating["politeness"]) == (5, 5, 4)
    rated = desk.events(tid, "rated")[-1]
    assert (rated["actor"], rated["to_value"]) == (customer, "5 5 4")
    assert rated["message_id"] == desk.events(tid, "accepted")[-1]["message_id"] is not None
    closing = body_text(desk.last(customer))
    assert "Thank you for your rating: 5 5 4" in closing and "How did we do?" not in closing
    assert "still wrong" in closing
    assert "[accepted the proposed solution and rated it 5 5 4; the ticket is closed]" in body_text(
        desk.last(agent))

    desk.reply_to(desk.last(customer), customer, "4 5 5\n")
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(4, 5, 5)]
    assert desk.ticket(tid)["status"] == "closed"


def test_an_acceptance_without_numbers_is_asked_for_the_rating(desk):
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent)
    desk.reply_to(desk.last(customer), customer, "Yes, it works.\nThe toner order is attached: 5 boxes.\n")
    assert desk.ticket(tid)["status"] == "closed" and desk.ratings(tid) == []
    closing = body_text(desk.last(customer))
    assert "How did we do?" in closing and "Thank you for your rating" not in closing


def test_only_the_requester_accepts_or_rejects_a_proposal(desk):
    """PRODUCT.md: "Only the customer accepts a proposed solution": a Cc'd colleague's "OK" leaves the
    proposal standing and reaches the assignee as such; their objection opens the ticket again."""
    customer, colleague, agent = "cust@example.org", "boss@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent, cc=colleague)
    proposal = desk.inbox(colleague)[-1]
    assert "Restart the printer." in body_text(proposal)
    # Only the requester's copy asks them to accept; the follower's says who decides.
    assert 'reply with "accept"' in body_text(desk.last(customer))
    parts = [part.get_content() for part in proposal.walk() if part.get_content_maintype() == "text"]
    assert len(parts) == 2 and not any("accept" in text for text in parts)   # plain text and HTML
    assert f"The person who opened ticket [#{tid}] decides" in body_text(proposal)

    desk.reply_to(proposal, colleague, "OK\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.events(tid, "accepted") == []
    told = desk.last(agent)
    assert "only the requester accepts or rejects a proposed solution" in body_text(told)
    assert "boss@example.org" in body_text(told)

    stands = desk.events(tid, "unchanged")[-1]
    assert stands["actor"] == colleague and "only the requester" in stands["reason"]

    # PRODUCT.md "The lifecycle": their objection is a reply that is no acceptance: open again, not rejected.
    desk.reply_to(proposal, colleague, "It is still burning here.\n", cc="george@example.org")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "rejected") == []
    told = body_text(desk.last(agent))
    assert "only the requester accepts or rejects; the ticket is open again" in told
    assert "It is still burning here." in told

    desk.reply_to(desk.last(agent), agent, "#propose\nUnplug it, then restart it.\n")
    desk.reply_to(desk.last(customer), customer, "It is still burning.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "rejected")[-1]["actor"] == customer
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


def _closed_by_agent(desk, customer: str, agent: str) -> int:
    """A ticket the customer opened and the agent it was given to closed (its closing mail sent)."""
    desk.send(build_mail(customer, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "#close\nReplaced the fuser.\n")
    return tid


def _closed_with_follower(desk, customer, colleague, agent):
    desk.send(build_mail(customer, "The printer is on fire.\n", cc=colleague))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "#close\nReplaced the fuser.\n")
    assert desk.ticket(tid)["status"] == "closed"
    return tid


def test_one_rating_per_ticket_from_the_requester_and_a_later_one_replaces_it(desk):
    """PRODUCT.md: the closing mail asks the requester for three numbers; their reply is *the* rating.
    A second one replaces the first (the history says from what to what); a follower was not asked,
    and their numbers change nothing and count nowhere."""
    from ticketd.report import desk_report

    customer, colleague, agent = "cust@example.org", "boss@example.org", "alice@example.com"
    tid = _closed_with_follower(desk, customer, colleague, agent)
    closing = desk.last(customer)
    desk.reply_to(closing, customer, "5 4 5\n")
    desk.reply_to(closing, customer, "3 4 5\n")
    [rating] = desk.ratings(tid)
    assert (rating["usefulness"], rating["speed"], rating["politeness"]) == (3, 4, 5)
    assert rating["message_id"] == desk.messages(tid)[-1]["id"]
    replaced = desk.events(tid, "rated")[-1]
    assert (replaced["from_value"], replaced["to_value"]) == ("5 4 5", "3 4 5")
    assert "replaced" in replaced["reason"] and "mail <" in replaced["reason"]

    told = len(desk.inbox(agent))
    desk.reply_to(desk.last(colleague), colleague, "1 1 1\n")
    assert desk.ticket(tid)["status"] == "closed"
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(3, 4, 5)]
    assert desk.messages(tid)[-1]["text"] == "1 1 1"                      # kept as a message
    [ignored] = desk.events(tid, "rating_not_counted")
    assert (ignored["actor"], ignored["to_value"]) == (colleague, "1 1 1")
    assert "only the requester" in ignored["reason"] and "mail <" in ignored["reason"]
    assert desk.events(tid, "reopened") == []
    note = body_text(desk.last(agent))       # the assignee reads it, and that it was not counted
    assert len(desk.inbox(agent)) == told + 1 and "1 1 1" in note and "not counted" in note
    assert "opened it again" not in note
    rated = desk_report(desk.app.engine, 30, [agent])["ratings"]
    assert rated["count"] == 1


def test_a_rating_signed_at_length_counts_and_the_assignee_reads_it_and_words_in_title_case_reopen(desk):
    """PRODUCT.md: a reply to a closed ticket reopens it unless it is only a rating. Title-Case words under
    a sign-off ("Still Broken", "Refund Please") were taken for a title and a company: the ticket stayed
    closed and no one read them. What does pass for a signature the assignee now reads."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _closed_by_agent(desk, customer, agent)
    closing = desk.last(customer)
    told = len(desk.inbox(agent))
    desk.reply_to(closing, customer, "5 4 5\n\nThanks,\nAnna\n")
    assert len(desk.inbox(agent)) == told                                  # only a rating: no one is told

    desk.reply_to(closing, customer, "5 5 5\n\nBest regards,\nAnna Smith\nACME Corp\nPhone +1 555 1234\n")
    assert desk.ticket(tid)["status"] == "closed" and desk.events(tid, "reopened") == []
    assert desk.events(tid, "rated")[-1]["to_value"] == "5 5 5"
    note = body_text(desk.last(agent))
    assert len(desk.inbox(agent)) == told + 1 and "read as a signature" in note and "ACME Corp" in note

    desk.reply_to(closing, customer, "1 1 1\nRegards,\nAnna\nStill Broken\nRefund Please\n")
    assert desk.ticket(tid)["status"] == "open" and desk.events(tid, "rated")[-1]["to_value"] == "5 5 5"
    note = body_text(desk.last(agent))
    assert "opened it again" in note and "Refund Please" in note


@pytest.mark.parametrize(("reply", "read"), [("10 10 10\n", "10 10 10"), ("Hi,\n0 4 5\nThanks, Anna\n", "0 4 5"),
                                            ("8/10 9/10 10/10\n", "8 9 10"), ("4/10, 5/10, 5/10\n", "4 5 5"),
                                            ("usefulness: 5\n", "5")])
def test_a_rating_off_the_scale_keeps_the_ticket_closed_and_the_requester_learns_how_to_rate(desk, reply, read):
    """The closing mail asks for three numbers from 1 to 5; "10 10 10" is delight, not what is still wrong.
    It reopened the ticket into an agent's queue: now it is not counted, and the requester is told how
    to rate (a follower's numbers are not counted either, and they were not asked)."""
    customer, colleague, agent = "cust@example.org", "boss@example.org", "alice@example.com"
    tid = _closed_with_follower(desk, customer, colleague, agent)
    desk.reply_to(desk.last(customer), customer, reply)
    assert desk.ticket(tid)["status"] == "closed" and desk.events(tid, "reopened") == []
    assert desk.ratings(tid) == []
    [ignored] = desk.events(tid, "rating_not_counted")
    assert (ignored["actor"], ignored["to_value"]) == (customer, read)
    assert "from 1 (poor) to 5 (excellent)" in ignored["reason"]
    asked = desk.last(customer)
    assert f'We could not count "{read}"' in body_text(asked) and "5 4 5" in body_text(asked)
    assert asked["Auto-Submitted"] == "auto-replied"
    assert asked["In-Reply-To"].strip("<>") == desk.messages(tid)[-1]["message_id"]
    # Rated on the scale then, it counts.
    desk.reply_to(asked, customer, "5 4 5\n")
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(5, 4, 5)]
    assert desk.ticket(tid)["status"] == "closed"
    # A follower's off-scale numbers: not counted, and nobody mails them about it.
    before = len(desk.inbox(colleague))
    desk.reply_to(desk.last(colleague), colleague, "10 10 10\n")
    assert desk.events(tid, "rating_not_counted")[-1]["to_value"] == "10 10 10"
    assert len(desk.inbox(colleague)) == before and desk.ticket(tid)["status"] == "closed"


@pytest.mark.parametrize("reply", ["quoted", "Thank you!\n", "Thanks a lot\n", "Great, thanks!\n",
                                   "Hi team,\n\nthanks, it works now.\n\nBest regards,\nAnna\n"])
def test_thanks_or_no_words_leave_a_closed_ticket_closed(desk, reply):
    """README: a reply with no text of its own changes nothing; the closing mail asks for what is still
    wrong to reopen, and thanks say nothing is. The history says why; the assignee reads it as such."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _closed_by_agent(desk, customer, agent)
    closing = desk.last(customer)
    if reply == "quoted":
        reply = "On Monday, Support wrote:\n" + "".join(f"> {line}\n" for line in body_text(closing).splitlines())
    desk.reply_to(closing, customer, reply)
    assert desk.ticket(tid)["status"] == "closed"
    assert desk.events(tid, "reopened") == [] and desk.ratings(tid) == []
    [unchanged] = desk.events(tid, "unchanged")
    assert unchanged["actor"] == customer and unchanged["from_value"] == "closed"
    assert ("no text of its own" in unchanged["reason"] or "only thanks" in unchanged["reason"])
    note = body_text(desk.last(agent))
    assert "the ticket stays closed" in note and "opened it again" not in note

    desk.reply_to(closing, customer, "Thanks, but it is burning again.\n")
    assert desk.ticket(tid)["status"] == "open" and desk.events(tid, "reopened")


def test_the_writers_own_lines_decide_under_quotes_and_below_the_accept_word(desk):
    """PRODUCT.md: a reply whose first line is an accept word closes the ticket, any other reply rejects it
    with its text as the reason, and a reply to a closed ticket reopens it unless it is only a rating.
    A quoted line over the answer was read as the first line ("> Restart the printer." over "Yes"), and
    words under "Ok," were not read at all: a customer saying it still fails got the rating request, and
    one asking to reopen had their ticket kept closed."""
    customer, agent = "cust@example.org", "alice@example.com"
    tid = _proposed(desk, customer, agent)
    desk.reply_to(desk.last(customer), customer, "Ok,\nI installed 2.1 but the printer still does not work.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert "still does not work" in desk.events(tid, "rejected")[-1]["reason"]
    assert "three numbers" not in body_text(desk.last(customer))          # no rating request

    desk.reply_to(desk.last(agent), agent, "#propose\nReplace the fuser.\n")
    proposal = desk.last(customer)
    desk.reply_to(proposal, customer, "Alice wrote:\n> Replace the fuser.\n\nYes, thanks!\n")
    assert desk.ticket(tid)["status"] == "closed"
    assert "'Yes, thanks!'" in desk.events(tid, "accepted")[-1]["reason"]
    assert "> Replace the fuser." in desk.messages(tid)[-1]["text"]        # the quote stays for the agent

    closing = desk.last(customer)
    assert "three numbers" in body_text(closing)
    desk.reply_to(closing, customer, "> How did we do? Reply with three numbers from 1 (poor) to 5 (excellent):\n"
                                     "> usefulness, speed and politeness.\n\n5 5 4\n")
    assert desk.ticket(tid)["status"] == "closed" and desk.events(tid, "reopened") == []
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(5, 5, 4)]

    desk.reply_to(closing, customer, "Ok.\nThe issue came back this morning, please reopen.\n")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "reopened")[-1]["from_value"] == "closed"
    assert "this reply opened it again" in body_text(desk.last(agent))

    desk.reply_to(desk.last(agent), agent, "#propose\nClean the rollers.\n")
    desk.reply_to(desk.last(customer), customer, "> Does this solve your problem?\n\nYes\n\nThanks, Dana\n")
    assert desk.ticket(tid)["status"] == "closed"
