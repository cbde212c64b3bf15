"""Customer mail end to end: strangers with a foreign tag, followers, reactions, key facts."""

from __future__ import annotations

import base64
import email
import re

import pytest
from sqlalchemy import func, select

from tests.desk import all_text, body_text, build_mail, open_desk
from ticketd.store.tables import participants, raw_mail, tickets

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.fixture
def any_desk(make_app, db_url):
    """On SQLite and PostgreSQL: who joins a ticket and which reaction counts depend on what each
    engine reports of an INSERT."""
    yield from open_desk(make_app, db_url)


def test_stranger_with_another_tickets_tag_gets_a_new_ticket_and_learns_nothing(desk):
    desk.send(build_mail(CUSTOMER, "My password is hunter2, please reset.\n", subject="Account locked"))
    first = desk.ticket()
    assert desk.assign(first["id"]) == ALICE
    stranger = "mallory@example.net"
    desk.send(build_mail(stranger, "#status closed\nWhat is in this ticket?\n",
                         subject=f"Re: [#{first['id']}] Account locked"))
    second = desk.ticket()
    assert second["id"] != first["id"] and second["requester"] == stranger
    assert desk.ticket(first["id"])["status"] == "new"
    assert len(desk.messages(first["id"])) == 1
    assert desk.events(first["id"], "customer_replied") == []
    mails = desk.inbox(stranger)
    assert len(mails) == 1                      # the acknowledgement of their own ticket
    text = all_text(mails[0])
    assert f"[#{second['id']}]" in text and f"[#{first['id']}]" not in text
    assert "hunter2" not in text and CUSTOMER not in text and ALICE not in text


@pytest.mark.parametrize("number", ["0", "2147483648", "99999999999"])
def test_a_tag_no_ticket_can_have_opens_a_new_ticket(any_desk, number):
    """Past PostgreSQL's INTEGER (2**31 - 1) a number was compared with the ticket ids there and refused."""
    desk = any_desk
    desk.send(build_mail(CUSTOMER, "Hello?\n", subject="Printer on fire"))
    first = desk.ticket()
    desk.send(build_mail(CUSTOMER, "Any news?\n", subject=f"Re: [#{number}] Printer on fire"))
    second = desk.ticket()
    assert second["id"] != first["id"] and second["requester"] == CUSTOMER
    assert [m["matched_by"] for m in desk.messages(second["id"])] == ["new"]
    assert len(desk.inbox(CUSTOMER)) == 2        # an acknowledgement for each


def test_a_reply_re_encoded_on_another_route_is_not_added_twice_and_a_different_one_is(any_desk):
    """Message-ID, From, Date, subject, text and files alike: one mail, whatever its bytes (ticketd/copies.py).
    A client reusing the Message-ID at another time, or with other files, wrote another mail."""
    desk = any_desk
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", subject="Drucker brennt"))
    ticket = desk.ticket()
    assert desk.assign(ticket["id"]) == ALICE
    told = len(desk.inbox(ALICE))

    def reply(cte: str, date: str = "Tue, 02 Jan 2024 10:00:00 +0100", files: bytes = b"log line 1\n"):
        mail = build_mail(CUSTOMER, "", subject=f"Re: [#{ticket['id']}] Drucker brennt",
                          in_reply_to=str(desk.inbox(CUSTOMER)[0]["Message-ID"]), Date=date)
        mail.replace_header("Message-ID", "<one-reply@client.example.org>")
        mail.set_content("Es brennt immer noch – größer.\n", cte=cte)
        mail.add_attachment(files, maintype="text", subtype="plain", filename="log.txt")
        return mail

    desk.send(reply("8bit"))
    desk.send(reply("quoted-printable"))
    desk.send(reply("base64"))
    assert [m["matched_by"] for m in desk.messages(ticket["id"])] == ["new", "references"]
    assert len(desk.inbox(ALICE)) == told + 1          # the assignee hears of the reply once
    assert len(desk.events(ticket["id"], "customer_replied")) == 1
    with desk.app.engine.connect() as conn:
        assert set(conn.execute(select(raw_mail.c.state, raw_mail.c.ticket_id)).all()) == {("done", ticket["id"])}
        assert conn.execute(select(func.count()).select_from(raw_mail)).scalar_one() == 4
    desk.send(reply("quoted-printable", date="Wed, 03 Jan 2024 09:00:00 +0100"))
    desk.send(reply("quoted-printable", files=b"log line 2\n"))
    assert len(desk.messages(ticket["id"])) == 4


def test_a_copy_of_a_first_mail_with_other_bytes_joins_its_ticket(any_desk):
    """A list's copy with its footer (or the mail sent again) has another dedupe key, not another conversation."""
    desk = any_desk
    first = build_mail(CUSTOMER, "The printer is on fire.\n", subject="Printer on fire")
    desk.send(first)
    ticket = desk.ticket()
    copy = build_mail(CUSTOMER, "The printer is on fire.\n\n-- \nsupport-list mailing list\n",
                      subject="[support-list] Printer on fire")
    copy.replace_header("Message-ID", first["Message-ID"])
    desk.send(copy)
    assert desk.ticket()["id"] == ticket["id"]
    assert [m["matched_by"] for m in desk.messages(ticket["id"])] == ["new", "message_id"]
    assert len(desk.inbox(CUSTOMER)) == 1        # one acknowledgement
    # A script that gives every mail one Message-ID still opens a ticket per question.
    other = build_mail(CUSTOMER, "And the scanner jams.\n", subject="Scanner jams")
    other.replace_header("Message-ID", first["Message-ID"])
    desk.send(other)
    assert desk.ticket()["id"] != ticket["id"] and desk.ticket()["subject"] == "Scanner jams"
    # Someone else's mail under that Message-ID is no copy of it.
    forged = build_mail("mallory@example.net", "The printer is on fire.\n", subject="Printer on fire")
    forged.replace_header("Message-ID", first["Message-ID"])
    desk.send(forged)
    assert desk.ticket()["requester"] == "mallory@example.net" and len(desk.messages(ticket["id"])) == 2


def test_followers_get_public_replies_and_may_reply(desk):
    colleague = "colleague@example.org"
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=colleague))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    assigned = desk.last(ALICE)
    desk.reply_to(assigned, ALICE, "#status waiting_customer\nWhich model is it?\n")
    to_colleague = desk.last(colleague)
    assert "Which model is it?" in body_text(to_colleague)
    assert desk.last(CUSTOMER)["Message-ID"] != to_colleague["Message-ID"]

    # The follower answers: it threads, reopens, and the agent sees it.
    desk.reply_to(to_colleague, colleague, "It is a LaserJet 4.\n", name="Colleague")
    assert desk.ticket(tid)["status"] == "open"
    stored = desk.messages(tid)[-1]
    assert (stored["from_addr"], stored["author_role"], stored["matched_by"]) == (
        colleague, "customer", "reply_address")
    told = desk.last(ALICE)
    assert "LaserJet 4" in body_text(told)
    # The assignee is told who wrote: the follower, not the requester.
    assert body_text(told).startswith(f"Colleague <{colleague}> wrote on [#{tid}]:")
    # A name that is another address (a colleague's, say) is left out: it would read as their mail.
    desk.reply_to(desk.last(colleague), colleague, "Any news?\n", name="\"alice@example.com\"")
    assert body_text(desk.last(ALICE)).startswith(f"{colleague} wrote on [#{tid}]:")
    # A new Cc on a customer's reply joins as a follower too.
    boss = "boss@example.org"
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Adding my boss.\n", cc=boss)
    desk.reply_to(desk.last(ALICE), ALICE, "Noted, thanks.\n")
    assert "Noted, thanks." in body_text(desk.last(boss))


def test_each_new_follower_is_an_event_in_the_history(any_desk):
    """PRODUCT.md: every change is an event (who, why); an address already on the ticket is no change."""
    desk = any_desk
    boss, facilities, it = "boss@example.org", "facilities@example.org", "it@example.org"
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=boss, to=f"support@example.com, {it}"),
                      envelope_to=["support@example.com"])
    tid = desk.ticket()["id"]
    [joined] = desk.events(tid, "follower_added")
    assert (joined["actor"], joined["to_value"]) == (CUSTOMER, boss)
    assert joined["message_id"] == desk.messages(tid)[0]["id"] and "Cc of mail <" in joined["reason"]
    assert desk.assign(tid) == ALICE
    # Requester, follower and agent in Cc again are no news; only facilities joins.
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Still burning.\n", cc=f"{boss}, {CUSTOMER}, {facilities}, {ALICE}")
    # A colleague it was written to, answering it (threaded by References), joins as its sender.
    desk.send(build_mail(it, "I unplugged it.\n", subject="Re: Printer on fire", in_reply_to=first["Message-ID"]))
    events = desk.events(tid, "follower_added")
    assert [(e["actor"], e["to_value"]) for e in events] == [(CUSTOMER, boss), (CUSTOMER, facilities), (it, it)]
    assert [e["message_id"] for e in events[1:]] == [m["id"] for m in desk.messages(tid)[-2:]]
    assert "wrote to the ticket" in events[2]["reason"]


@pytest.fixture
def small_desk(make_app, db_url):
    """A desk whose tickets take at most three followers from mail."""
    yield from open_desk(make_app, db_url, extra="max_followers: 3\n")


def test_mail_brings_a_ticket_followers_up_to_max_followers_and_names_who_it_left_out(small_desk):
    """A mail Cc'ing a whole company makes no one past the limit a recipient of every public reply;
    the history names them; an agent's #follow still adds (a person chose it)."""
    desk = small_desk
    copied = [f"c{i}@example.org" for i in range(5)]
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=", ".join([CUSTOMER, copied[0], *copied])))
    tid = desk.ticket()["id"]
    assert [e["to_value"] for e in desk.events(tid, "follower_added")] == copied[:3]
    [limited] = desk.events(tid, "followers_limited")
    assert (limited["actor"], limited["to_value"]) == (CUSTOMER, "2")
    assert limited["message_id"] == desk.messages(tid)[0]["id"]
    assert f"{copied[3]}, {copied[4]}; in Cc of mail <" in limited["reason"] and "max_followers" in limited["reason"]
    assert desk.assign(tid) == ALICE
    # A reply Cc'ing one more: left out too, in an event of its own.
    late = "late@example.org"
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Adding a colleague.\n", cc=late)
    assert [e["to_value"] for e in desk.events(tid, "followers_limited")] == ["2", "1"]
    # Someone left out who writes in (by the customers' reply address) is kept, but follows not
    # and cannot accept; the agent's #follow adds them past the limit.
    desk.reply_to(desk.last(ALICE), ALICE, "#status solution_proposed\nReplace the fuser.\n")
    desk.reply_to(desk.last(CUSTOMER), copied[4], "yes\n")
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.messages(tid)[-1]["from_addr"] == copied[4]
    assert f"{copied[4]}; wrote to the ticket" in desk.events(tid, "followers_limited")[-1]["reason"]
    desk.reply_to(desk.last(ALICE), ALICE, f"#follow {late}\nThe technician comes at 3pm.\n")
    assert desk.events(tid, "follower_added")[-1]["to_value"] == late
    for someone in (CUSTOMER, *copied[:3], late):
        assert "3pm" in body_text(desk.last(someone))
    assert all("3pm" not in body_text(m) for m in desk.inbox(copied[3]) + desk.inbox(copied[4]))


def test_a_limit_of_no_followers_and_the_names_an_event_spells_out(make_app, sqlite_url):
    """max_followers: 0 lets mail bring no one; a long list is named up to 20, the count says the rest."""
    from ticketd.domain.following import LEFT_OUT_NAMED

    for desk in open_desk(make_app, sqlite_url, extra="max_followers: 0\n"):
        copied = [f"c{i}@example.org" for i in range(LEFT_OUT_NAMED + 5)]
        desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=", ".join(copied)))
        tid = desk.ticket()["id"]
        assert desk.events(tid, "follower_added") == []
        [limited] = desk.events(tid, "followers_limited")
        assert limited["to_value"] == str(LEFT_OUT_NAMED + 5)
        assert f"{copied[LEFT_OUT_NAMED - 1]} and 5 more; in Cc of" in limited["reason"]
        assert copied[LEFT_OUT_NAMED] not in limited["reason"]


def test_an_outsider_threaded_by_a_received_message_id_is_kept_and_joins_nothing(any_desk):
    """A customer's Message-ID is no secret (every copy, a list's archive, a forward shows it): whoever it
    was not written to is kept on the ticket for the assignee, and neither follows it nor changes it."""
    desk = any_desk
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc="colleague@example.org"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\nWhich model is it?\n")
    outsider, their_friend = "mallory@example.net", "friend@example.net"
    # Naming herself in Cc (and her friend) proves nothing: only mail that vouches for the ticket counts.
    desk.send(build_mail(outsider, "Any news? Please reply to me.\n", subject="Re: Printer on fire",
                         in_reply_to=first["Message-ID"], cc=f"{their_friend}, {outsider}"))
    stored = desk.messages(tid)[-1]
    assert (stored["from_addr"], stored["matched_by"]) == (outsider, "references")
    assert [e["to_value"] for e in desk.events(tid, "follower_added")] == ["colleague@example.org"]
    [kept] = desk.events(tid, "outsider_kept")
    assert kept["actor"] == outsider and "joins no one, changes nothing" in kept["reason"]
    assert outsider not in kept["reason"]   # `ticketd forget` takes the actor out; a reason it does not read
    # Her second mail: her first, naming her, vouches for nothing either.
    desk.send(build_mail(outsider, "Hello??\n", subject="Re: Printer on fire", in_reply_to=first["Message-ID"]))
    assert len(desk.events(tid, "outsider_kept")) == 2
    assert desk.ticket(tid)["status"] == "waiting_customer"
    assert "is on no mail of this ticket" in body_text(desk.last(ALICE))
    desk.reply_to(desk.last(ALICE), ALICE, "It is fixed; the technician comes at 3pm.\n")
    assert desk.inbox(outsider) == [] and desk.inbox(their_friend) == []
    assert "3pm" in body_text(desk.last(CUSTOMER)) and "3pm" in body_text(desk.last("colleague@example.org"))
    # An agent's notice forwarded to a vendor: its reply address is the agent's own; the vendor's
    # answer is kept for the agent, and the vendor follows nothing.
    vendor = "vendor@example.com"
    desk.send(build_mail(vendor, "Firmware 2.1 fixes it.\n", to=f"{desk.agent_address(tid, ALICE)}, {vendor}",
                         subject=f"Fwd: [#{tid}] Printer on fire"), envelope_to=[desk.agent_address(tid, ALICE)])
    assert desk.messages(tid)[-1]["matched_by"] == "reply_address"
    assert desk.events(tid, "outsider_kept")[-1]["actor"] == vendor
    assert "through an agent's own reply address" in desk.events(tid, "outsider_kept")[-1]["reason"]
    assert "Firmware 2.1" in body_text(desk.last(ALICE)) and vendor not in [
        e["to_value"] for e in desk.events(tid, "follower_added")]
    # The next assignee's quote of the conversation still marks her and the vendor's mail as kept apart,
    # not as the customer's words.
    from ticketd.admin import assign as assign_by_hand

    assign_by_hand(desk.app, tid, "bob@example.com")
    desk.flush()
    quoted = body_text(desk.last("bob@example.com"))
    assert f"<{vendor}> (customer, from someone not on the ticket, kept apart)" in quoted
    assert f"<{outsider}> (customer, from someone not on the ticket, kept apart)" in quoted
    assert f"<{CUSTOMER}> (customer)" in quoted
    # Our own mail's Message-ID is signed: someone it was forwarded to who answers it joins, as by
    # its reply address (PRODUCT.md threading 1 and 2).
    forwarded_to = "helper@example.org"
    desk.send(build_mail(forwarded_to, "I can fix it.\n", subject="Re: Printer on fire",
                         in_reply_to=str(desk.last(CUSTOMER)["Message-ID"])))
    assert desk.events(tid, "follower_added")[-1]["to_value"] == forwarded_to


def test_an_outsider_sending_their_kept_mail_again_with_other_words_still_joins_nothing(any_desk):
    """Another copy of a kept mail (its Message-ID and From) goes where the first went: sent with other
    words by the outsider who wrote the first, it proves no more part in the ticket than the first did."""
    desk = any_desk
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    outsider = "mallory@example.net"
    again = desk.send(build_mail(outsider, "Any news?\n", subject="Re: Printer on fire",
                                 in_reply_to=first["Message-ID"]))
    copy = build_mail(outsider, "Any news? Add my friend.\n", subject="Re: Printer on fire",
                      cc="friend@example.net")
    copy.replace_header("Message-ID", again["Message-ID"])
    desk.send(copy)
    assert desk.messages(tid)[-1]["matched_by"] == "message_id"
    kept = desk.events(tid, "outsider_kept")
    assert len(kept) == 2 and "another copy of a mail we received" in kept[1]["reason"]
    assert [p["email"] for p in desk.rows(participants, ticket_id=tid)] == [CUSTOMER]


def test_an_agent_in_cc_of_a_first_mail_is_not_a_follower(desk):
    """Only the customer accepts a solution (PRODUCT.md); a follower could, so an agent never is one."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=f"{ALICE}, boss@example.org"))
    tid = desk.ticket()["id"]
    assert [(p["email"], p["role"]) for p in desk.rows(participants, ticket_id=tid)] == [
        (CUSTOMER, "requester"), ("boss@example.org", "follower")]


def test_tickets_show_orders_the_conversation_within_a_second(desk):
    from datetime import datetime

    from sqlalchemy import update

    from ticketd.store.tables import messages, outbox
    from ticketd.views import show_ticket

    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Now it smokes too.\n")
    desk.assign(tid)
    first, second = (m["id"] for m in desk.messages(tid))
    ack, assigned = (r["id"] for r in desk.rows(ticket_id=tid))
    at = datetime(2026, 5, 1, 12, 0, 0)
    with desk.app.engine.begin() as conn:   # all in one second: the fraction decides
        for table, row_id, micro in ((messages, first, 100), (outbox, ack, 100), (messages, second, 500),
                                     (outbox, assigned, 700)):
            conn.execute(update(table).where(table.c.id == row_id).values(created_at=at.replace(microsecond=micro)))
    shown = show_ticket(desk.app.engine, tid)["messages"]
    assert [(m["direction"], m["id"] or m["outbox_id"]) for m in shown] == [
        ("in", first), ("out", ack), ("in", second), ("out", assigned)]


def test_tickets_show_names_the_agent_of_a_relayed_reply(desk):
    """The customer saw the agent's name on the reply; `tickets show` said ticketd (system) wrote it."""
    from ticketd.views import show_ticket

    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Try turning it off.\n")
    shown = {m["template"]: m for m in show_ticket(desk.app.engine, tid)["messages"] if m["direction"] == "out"}
    reply, ack = shown["requester/agent_reply"], shown["requester/ticket_opened"]
    assert (reply["author_role"], reply["from_name"]) == ("agent", "Alice")
    assert reply["from"] == "support@example.com"
    assert (ack["author_role"], ack["from_name"]) == ("system", "Support")


@pytest.fixture
def desk_of_mueller(make_app, sqlite_url):
    """Alice's name in rules.yaml is "Müller, Anna": a comma and a letter that goes out as encoded words."""
    from tests.conftest import MINIMAL_RULES

    yield from open_desk(make_app, sqlite_url, rules=MINIMAL_RULES.replace("name: Alice,", 'name: "Müller, Anna",'))


def test_tickets_show_keeps_an_agents_name_with_a_comma_and_an_umlaut_whole(desk_of_mueller, tmp_path):
    """Decoded before the From line was parsed, the name's comma split it: `tickets show` gave "Müller"
    as the address the reply came from, and no name."""
    import json

    from tests.cli import cli_ok

    desk = desk_of_mueller
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Try turning it off.\n")
    assert desk.last(CUSTOMER)["From"].addresses[0].display_name == "Müller, Anna"   # as the customer saw it
    shown = json.loads(cli_ok(tmp_path / "ticketd.yaml", "tickets", "show", str(tid), "--json"))
    reply, = (m for m in shown["messages"] if m.get("template") == "requester/agent_reply")
    assert (reply["from"], reply["from_name"], reply["author_role"]) == ("support@example.com", "Müller, Anna", "agent")


def test_auto_replies_are_stored_but_bring_in_no_followers(any_desk):
    """PRODUCT.md "Loops and robots": auto-generated mail is stored on its ticket; neither its sender
    nor its Cc join as followers, or every public reply would go to a robot and its list."""
    desk = any_desk
    robot, staff = "helpdesk@corp.example", "all-staff@corp.example"
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Try turning it off.\n")
    # The customer's own help desk answers our reply automatically (RFC 3834), copying its staff.
    desk.reply_to(desk.last(CUSTOMER), robot, "Received as CORP-123.\n", cc=staff, Auto_Submitted="auto-replied")
    stored = desk.messages(tid)[-1]
    assert (stored["from_addr"], bool(stored["auto_generated"])) == (robot, True)
    assert [(p["email"], p["role"]) for p in desk.rows(participants, ticket_id=tid)] == [
        (CUSTOMER, "requester"), (ALICE, "agent")]
    desk.reply_to(desk.last(ALICE), ALICE, "Any news?\n")
    assert "Any news?" in body_text(desk.last(CUSTOMER))
    assert desk.inbox(robot) == [] and desk.inbox(staff) == []
    assert desk.events(tid, "follower_added") == []

    # A robot's first mail opens a ticket of its own; its Cc stay out of that one too.
    desk.send(build_mail("noreply@shop.example", "Your order has shipped.\n", subject="Order 77", cc=staff,
                         Auto_Submitted="auto-generated"))
    opened = desk.ticket()
    assert opened["id"] != tid
    assert [p["role"] for p in desk.rows(participants, ticket_id=opened["id"])] == ["requester"]
    assert desk.events(opened["id"], "follower_added") == []


def test_reaction_links_record_once_and_open_nothing(any_desk):
    desk = any_desk
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "#close\nFixed it remotely.\n")
    reply = next(m for m in desk.inbox(CUSTOMER) if "Fixed it remotely." in body_text(m))
    like = re.search(r"mailto:([^\s?>]+)", body_text(reply)).group(1)
    assert like.startswith("support+")
    tickets_before = desk.ticket()["id"]
    for _ in range(2):
        desk.send(build_mail(CUSTOMER, "\n", to=like, subject="Helpful"))
    [reaction] = desk.reactions()
    assert (reaction["reaction"], reaction["by_addr"]) == ("like", CUSTOMER)
    assert desk.messages(tid)[reaction["message_id"] - desk.messages(tid)[0]["id"]]["text"] == "Fixed it remotely."
    assert desk.ticket()["id"] == tickets_before          # no new ticket
    assert desk.ticket(tid)["status"] == "closed"          # nothing reopened
    assert len(desk.events(tid, "reaction")) == 1


def test_a_reaction_may_change_and_its_words_reach_the_agent(any_desk):
    """A second click of the other link changes the reaction; words written with a click are stored
    on the ticket and the assignee gets them; a phone's tagline alone is no words."""
    desk = any_desk
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Unplug it.\n")
    like, dislike = re.findall(r"mailto:([^\s?>]+)", body_text(desk.last(CUSTOMER)))[-2:]
    desk.send(build_mail(CUSTOMER, "\nSent from my iPhone\n", to=like, subject="Helpful"))
    told_before = len(desk.inbox(ALICE))
    assert len(desk.messages(tid)) == 2 and len(desk.inbox(ALICE)) == told_before
    desk.send(build_mail(CUSTOMER, "It did NOT help, the printer exploded. Please call me!\n", to=dislike,
                         subject="Not helpful"))
    [reaction] = desk.reactions()
    assert reaction["reaction"] == "dislike"
    changed = desk.events(tid, "reaction")[-1]
    assert (changed["from_value"], changed["to_value"]) == ("like", "dislike")
    stored = desk.messages(tid)[-1]
    assert (stored["from_addr"], stored["text"]) == (CUSTOMER, "It did NOT help, the printer exploded. Please call me!")
    assert stored["matched_by"] == "reaction"
    assert "printer exploded" in body_text(desk.last(ALICE)) and len(desk.inbox(ALICE)) == told_before + 1
    assert desk.ticket(tid)["status"] == "open" and len(desk.rows(tickets)) == 1


def test_key_facts_fill_fields_only_at_the_top_of_the_first_mail(desk):
    desk.send(build_mail(CUSTOMER, "Type: feature\nSource: mobile app\nScale: 3 shops\nReproducible: no\n\n"
                                   "Please add dark mode.\n"))
    ticket = desk.ticket()
    assert (ticket["type"], ticket["source"], ticket["scale"], ticket["reproducible"]) == (
        "idea", "mobile app", "3 shops", "no")
    [facts] = desk.events(ticket["id"], "key_facts")
    assert facts["actor"] == CUSTOMER and facts["message_id"] is not None and "mail <" in facts["reason"]
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Type: bug\n\nalso it crashes\n")
    assert desk.ticket(ticket["id"])["type"] == "idea"


def test_key_facts_may_follow_a_greeting_line(desk):
    """People greet first ("Hi team,"): the facts after one greeting line are still at the top."""
    desk.send(build_mail(CUSTOMER, "Hi team,\n\nType: bug\nSource: web shop\nScale: all users\n"
                                   "Reproducible: always\n\nCheckout fails.\n"))
    ticket = desk.ticket()
    assert (ticket["type"], ticket["source"], ticket["scale"], ticket["reproducible"]) == (
        "bug", "web shop", "all users", "always")
    assert desk.events(ticket["id"], "key_facts")


def test_rating_needs_a_closed_ticket_and_garbage_reopens(desk):
    desk.send(build_mail(CUSTOMER, "Help\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "#close\n")
    closing = desk.last(CUSTOMER)
    assert desk.rows(recipient=CUSTOMER)[-1]["template"] == "requester/ticket_closed"
    desk.reply_to(closing, CUSTOMER, "9 9 9 9\n")   # four numbers are no rating (three off the scale are)
    assert desk.ticket(tid)["status"] == "open" and desk.ratings(tid) == []


def test_an_agent_who_asked_for_help_answers_as_the_customer_of_that_ticket(desk):
    """PRODUCT.md: a mail that fails the agent checks is an ordinary customer mail. An agent
    writing to support is the requester there, and accepts a proposed solution like anyone."""
    bob = "bob@example.com"
    desk.send(build_mail(bob, "My laptop will not boot.\n", subject="Laptop"))
    tid = desk.ticket()["id"]
    assert desk.ticket(tid)["requester"] == bob
    assert desk.assign(tid) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nHold the power button for ten seconds.\n")
    proposal = desk.last(bob)
    assert "ten seconds" in body_text(proposal)
    desk.reply_to(proposal, bob, "Yes\n")
    assert desk.ticket(tid)["status"] == "closed"
    assert desk.events(tid, "accepted")
    # Commands in it are still text: the signed agent address was not used.
    desk.reply_to(desk.last(bob), bob, "#status open\n#priority urgent\n")
    assert desk.ticket(tid)["priority"] == "normal"


def test_a_reused_message_id_never_draws_replies_away_from_the_original(any_desk):
    """PRODUCT.md: a mail never joins, reads or changes another customer's ticket. Someone who sends a
    mail of their own under the customer's Message-ID opens a ticket of their own, and the replies
    that name that Message-ID still go to the ticket that received it first."""
    desk = any_desk
    colleague, mallory = "colleague@example.org", "mallory@example.net"
    original = desk.send(build_mail(CUSTOMER, "Our VPN password is hunter2 and it fails.\n", cc=colleague))
    tid = desk.ticket()["id"]
    for n in range(3):   # enough that an unordered lookup would pick a copy some of the time
        forged = build_mail(mallory, f"Anything {n}.\n", subject="Printer on fire")
        forged.replace_header("Message-ID", str(original["Message-ID"]))
        desk.send(forged)
    assert desk.ticket()["id"] != tid and desk.ticket()["requester"] == mallory
    desk.send(build_mail(colleague, "Also failing here, password hunter2.\n", subject="Re: Printer on fire",
                         in_reply_to=str(original["Message-ID"]), cc=CUSTOMER))
    [joined] = [m for m in desk.messages(tid) if m["from_addr"] == colleague]
    assert joined["matched_by"] == "references"
    assert all(m["from_addr"] != colleague for t in desk.rows(tickets) if t["id"] != tid
               for m in desk.messages(t["id"]))



def test_a_mail_from_several_authors_has_one_requester_and_the_others_follow(desk):
    """RFC 5322 3.6.2: several From addresses are co-authors; Sender says which of them sent it."""
    msg = build_mail(CUSTOMER, "Both of us see the printer burning.\n")
    msg.replace_header("From", f"Cust <{CUSTOMER}>, Boss <boss@example.org>")
    msg["Sender"] = "boss@example.org"
    desk.send(msg)
    ticket = desk.ticket()
    assert ticket["requester"] == "boss@example.org"
    assert [(p["email"], p["role"]) for p in desk.rows(participants, ticket_id=ticket["id"])] == [
        ("boss@example.org", "requester"), (CUSTOMER, "follower")]
    assert len(desk.inbox("boss@example.org")) == 1          # the acknowledgement
    desk.assign(ticket["id"])
    desk.reply_to(desk.last(ALICE), ALICE, "We are on our way.\n")
    assert "We are on our way." in body_text(desk.last(CUSTOMER))


def test_only_the_tickets_customers_react(any_desk):
    """A like/dislike counts from the ticket's requester or a follower; a stranger who got the mail
    forwarded (or guessed nothing: the address is signed) is logged as not counted, never a reaction."""
    desk = any_desk
    colleague, stranger = "colleague@example.org", "mallory@example.net"
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", cc=colleague))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "Unplug it.\n")
    like, dislike = re.findall(r"mailto:([^\s?>]+)", body_text(desk.last(CUSTOMER)))[-2:]
    messages_before, told_before = len(desk.messages(tid)), len(desk.inbox(ALICE))
    desk.send(build_mail(stranger, "Terrible advice, call me at once!\n", to=dislike, subject="Not helpful"))
    assert desk.reactions() == []
    [ignored] = desk.events(tid, "reaction_ignored")
    assert (ignored["actor"], ignored["to_value"]) == (stranger, "dislike")
    assert "not counted" in ignored["reason"] and "requester or a follower" in ignored["reason"]
    assert len(desk.messages(tid)) == messages_before and len(desk.inbox(ALICE)) == told_before
    assert desk.rows(participants, ticket_id=tid, email=stranger) == []

    desk.send(build_mail(colleague, "\n", to=like, subject="Helpful"))
    [reaction] = desk.reactions()
    assert (reaction["reaction"], reaction["by_addr"]) == ("like", colleague)


def test_who_joins_under_the_limit_and_who_is_left_out():
    """The pure decision: names already on the ticket or named twice are no change and take no place."""
    from ticketd.domain.following import followers_joining

    on_ticket = {"req@example.org": "requester", "f@example.org": "follower", ALICE: "agent"}
    named = [("F@example.org", None), ("a@example.org", "A"), ("REQ@example.org", None), ("a@example.org", None),
             ("b@example.org", None), ("c@example.org", "C")]
    joining = followers_joining(named, on_ticket, 3)
    assert joining.join == (("a@example.org", "A"), ("b@example.org", None))
    assert joining.left_out == ("c@example.org",)
    assert followers_joining(named, on_ticket, None).join == (("a@example.org", "A"), ("b@example.org", None),
                                                              ("c@example.org", "C"))
    assert followers_joining(named, on_ticket, 1).left_out == ("a@example.org", "b@example.org", "c@example.org")


def test_a_mail_without_a_from_address_is_not_shown_as_the_requesters(desk):
    """The assignee's notice fell back to the requester's address: a "Yes" from nobody read as the customer
    accepting, inviting a close by hand."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    ticket_id = desk.ticket()["id"]
    assert desk.assign(ticket_id) == ALICE
    ack = desk.last(CUSTOMER)
    anonymous = build_mail(CUSTOMER, "Yes\n", to=str(ack["Reply-To"]), subject="Re: " + str(ack["Subject"]),
                           in_reply_to=str(ack["Message-ID"]))
    del anonymous["From"]
    desk.send(anonymous)
    told = desk.last(ALICE)
    assert body_text(told).startswith(f"Someone who gave no From address wrote on [#{ticket_id}]:")
    assert CUSTOMER not in body_text(told)
    assert desk.messages(ticket_id)[-1]["from_addr"] is None


@pytest.mark.parametrize(("name", "shown"), [("Alice <alice@example.com>", "Alice"), ("alice@example.com", None)])
def test_a_display_name_holding_an_address_is_shown_without_it(desk, name, shown):
    """From: "Alice <alice@example.com>" <eve@…> was greeted "Hello Alice <alice@example.com>," and shown to
    agents as "Alice <alice@example.com> <eve@…>": a colleague's mail to whoever reads it."""
    eve = "eve@cust.example"
    encoded = "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="
    raw = (f"From: {encoded} <{eve}>\r\nTo: support@example.com\r\nSubject: Printer on fire\r\n"
           f"Message-ID: <spoofed.{len(name)}@cust.example>\r\n\r\nThe printer is on fire.\r\n").encode()
    desk.send(email.message_from_bytes(raw))
    ticket = desk.ticket()
    assert (ticket["requester"], ticket["requester_name"]) == (eve, shown)
    ack = body_text(desk.last(eve))
    assert ack.startswith(f"Hello {shown}," if shown else "Hello,") and "alice@example.com" not in ack
    desk.assign(ticket["id"])
    told = body_text(desk.last(ALICE))
    assert f"A public reply goes to: {shown} <{eve}>" in told if shown else f"A public reply goes to: {eve}" in told
    assert "alice@example.com" not in told


def test_a_subject_of_pages_is_shortened_for_the_ticket_and_kept_whole_in_its_message(any_desk):
    """A 20,005-character subject was the ticket's: 67 KB in every mail's Subject, and in the text again."""
    desk = any_desk
    subject = "Printer " + "very " * 4000
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", subject=subject))
    ticket = desk.ticket()
    assert len(ticket["subject"]) <= 250 and ticket["subject"].endswith("very…")
    assert subject.startswith(ticket["subject"][:-1])
    assert desk.messages(ticket["id"])[0]["subject"] == subject.strip()
    ack = desk.last(CUSTOMER)
    assert str(ack["Subject"]) == f"[#{ticket['id']}] {ticket['subject']}"
    assert len(ack.as_bytes()) < 8000
    # Answered without the reply address, by the tag in the subject the customer was sent: it threads.
    desk.send(build_mail(CUSTOMER, "It is still on fire.\n", subject="Re: " + str(ack["Subject"])))
    assert [m["matched_by"] for m in desk.messages(ticket["id"])] == ["new", "subject_tag"]
