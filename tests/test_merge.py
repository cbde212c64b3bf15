"""`ticketd tickets merge`: the conversation moves, the source closes quietly, mail naming it lands on the target."""

from __future__ import annotations

import json
import smtplib

import pytest
from sqlalchemy import select

from tests.cli import cli_ok, run_cli, run_cli_at_a_terminal, run_cli_without_terminal
from tests.conftest import MINIMAL_RULES
from tests.desk import body_text, build_mail, open_desk
from tests.sink import delivery_report
from ticketd.clock import utcnow
from ticketd.domain.merge import Joining, follow_merges, joining, refusal
from ticketd.erase import erase_ticket
from ticketd.merge import MergeRefused, merge
from ticketd.pipeline import drain
from ticketd.store import tables as t
from ticketd.store.merge import final_ticket, lock_final
from ticketd.store.tickets import add_rating, add_reaction
from ticketd.views import list_tickets, show_ticket

CUSTOMER, COLLEAGUE, BOSS, ALICE = "cust@example.org", "colleague@example.org", "boss@example.org", "alice@example.com"

# Outages get a tag of their own besides the one every ticket gets: the
# merge must bring over the tag the target lacks.
TAGGING_RULES = MINIMAL_RULES.replace(
    "routes:\n",
    "routes:\n"
    "  - name: outages\n"
    "    if: {subject: \"(?i)outage\"}\n"
    "    then: {tags: [outage]}\n"
    "    continue: true\n",
).replace("then: {group: support}", "then: {group: support, tags: [support]}")


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=TAGGING_RULES)


def _open(desk, sender: str, subject: str, body: str = "It is on fire.\n", **kw) -> int:
    desk.send(build_mail(sender, body, subject=subject, **kw))
    return desk.ticket()["id"]


def _emails(desk, ticket_id: int) -> dict[str, str]:
    return {p["email"]: p["role"] for p in desk.rows(t.participants, ticket_id=ticket_id)}


def _tags(desk, ticket_id: int) -> set[str]:
    with desk.app.engine.connect() as conn:
        return set(conn.execute(select(t.ticket_tags.c.tag).where(t.ticket_tags.c.ticket_id == ticket_id)).scalars())


def _armed(desk, ticket_id: int) -> list[dict]:
    return [r for r in desk.rows(t.timers, ticket_id=ticket_id) if r["state"] == "armed"]


def _config(desk):
    return desk.app.settings.rules_file.parent / "ticketd.yaml"


# ---------------------------------------------------------------- what moves


def test_merge_moves_the_conversation_and_closes_the_source_without_mail(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    second = build_mail(COLLEAGUE, "Outage: the printer is smoking.\n", subject="Printer outage",
                        cc=f"{BOSS}, {CUSTOMER}")
    second.add_attachment(b"smoke log", maintype="text", subtype="plain", filename="smoke.log")
    desk.send(second)
    source = desk.ticket()["id"]
    [source_message] = desk.messages(source)
    with desk.app.engine.begin() as conn:   # a rating and a reaction hang on the moved message
        add_rating(conn, source, 5, 4, 3, source_message["id"], utcnow())
        add_reaction(conn, source_message["id"], "like", BOSS, utcnow())
    assert _tags(desk, source) == {"outage", "support"} and _tags(desk, target) == {"support"}
    assert _armed(desk, source)   # `new` has a respond-within timer
    outbox_before = desk.rows(t.outbox)

    done = json.loads(cli_ok(_config(desk), "tickets", "merge", str(source), str(target), "--yes", "--json"))

    assert done == {"source": source, "into": target, "moved": {
        "messages": 1, "attachments": 1, "reactions": 1, "ratings": 1, "participants": 2,
        "participants_already_there": 1, "tags": 1, "timers_cancelled": 1}, "assignee": None,
        "reopened_from": None}
    assert desk.messages(source) == []
    moved = desk.messages(target)
    assert [m["id"] for m in moved][-1] == source_message["id"] and len(moved) == 2
    [attachment] = desk.rows(t.attachments, message_id=source_message["id"])
    assert attachment["filename"] == "smoke.log"
    assert [r["ticket_id"] for r in desk.ratings(target)] == [target] and desk.ratings(source) == []
    assert [r["message_id"] for r in desk.reactions()] == [source_message["id"]]
    # The source's requester follows the target; the customer already there stays its requester.
    assert _emails(desk, target) == {CUSTOMER: "requester", COLLEAGUE: "follower", BOSS: "follower"}
    assert _emails(desk, source) == {}
    assert _tags(desk, target) == {"outage", "support"} and _tags(desk, source) == set()
    assert _armed(desk, source) == []
    assert {r["state"] for r in desk.rows(t.timers, ticket_id=source)} == {"cancelled"}

    closed, kept = desk.ticket(source), desk.ticket(target)
    assert (closed["status"], closed["merged_into"]) == ("closed", target) and closed["closed_at"] is not None
    assert (kept["status"], kept["merged_into"]) == ("new", None)
    # No mail at all: no closing mail, no rating request, nothing to anyone.
    assert desk.rows(t.outbox) == outbox_before
    [into_event] = desk.events(source, "merged_into")
    assert (into_event["actor"], into_event["from_value"], into_event["to_value"]) == ("admin:cli", "new", "closed")
    assert f"merged into [#{target}]" in into_event["reason"] and "messages 1" in into_event["reason"]
    [merged_event] = desk.events(target, "merged")
    assert f"ticket [#{source}] merged into this one by `ticketd tickets merge`" in merged_event["reason"]
    assert "participants 2" in merged_event["reason"] and "tags 1" in merged_event["reason"]
    # The source keeps its own history.
    assert [e["kind"] for e in desk.events(source)][0] == "created"

    shown = json.loads(cli_ok(_config(desk), "tickets", "show", str(source), "--json"))
    assert (shown["merged_into"], shown["status"], shown["messages"][0]["direction"]) == (target, "closed", "out")
    into = show_ticket(desk.app.engine, target)
    assert (into["merged_into"], into["merged_from"]) == (None, [source])
    # The target reads as one conversation: both mails in and both acknowledgements out.
    assert [m["direction"] for m in into["messages"]] == ["in", "out", "in", "out"]
    text = cli_ok(_config(desk), "tickets", "show", str(source))
    assert f"merged into [#{target}]" in text
    listed = json.loads(cli_ok(_config(desk), "tickets", "list", "--json"))
    assert {r["id"]: (r["status"], r["merged_into"]) for r in listed} == {
        source: ("closed", target), target: ("new", None)}


def test_an_unassigned_target_goes_to_the_agent_who_had_the_source(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    with desk.app.engine.begin() as conn:   # someone took the second report; the first still waits
        conn.execute(t.tickets.update().where(t.tickets.c.id == source).values(assignee=ALICE))

    done = json.loads(cli_ok(_config(desk), "tickets", "merge", str(source), str(target), "--yes", "--json"))

    assert done["assignee"] == ALICE and desk.ticket(target)["assignee"] == ALICE
    [given] = desk.events(target, "assigned")
    assert (given["actor"], given["to_value"]) == ("admin:cli", ALICE)
    assert f"had [#{source}]" in given["reason"]
    assert f"assigned to {ALICE}, who had [#{source}]" in desk.events(target, "merged")[0]["reason"]

    # A target that has its agent keeps them.
    third = _open(desk, BOSS, "Printer outage")
    with desk.app.engine.begin() as conn:
        conn.execute(t.tickets.update().where(t.tickets.c.id == third).values(assignee="bob@example.com"))
    assert json.loads(cli_ok(_config(desk), "tickets", "merge", str(third), str(target), "--yes",
                             "--json"))["assignee"] is None
    assert desk.ticket(target)["assignee"] == ALICE


def test_merging_into_a_closed_ticket_keeps_it_closed_and_a_reply_reopens_only_the_target(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    desk.assign(target)
    desk.reply_to(desk.last(ALICE), ALICE, "#close\n")
    closed_at = desk.ticket(target)["closed_at"]
    assert desk.ticket(target)["status"] == "closed"
    source = _open(desk, CUSTOMER, "The printer again")
    ack = desk.last(CUSTOMER)

    merge(desk.app, source, target)
    assert (desk.ticket(target)["status"], desk.ticket(target)["closed_at"]) == ("closed", closed_at)

    desk.reply_to(ack, CUSTOMER, "It is burning again.\n")
    assert desk.ticket(target)["status"] == "open" and desk.events(target, "reopened")
    assert desk.ticket(source)["status"] == "closed" and desk.events(source, "reopened") == []


# ---------------------------------------------------------------- threading after the merge


def test_reply_address_references_and_tag_of_the_source_land_on_the_target(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    ack = desk.last(COLLEAGUE)
    assert f"[#{source}]" in str(ack["Subject"])
    merge(desk.app, source, target)

    by_address = desk.reply_to(ack, COLLEAGUE, "By the reply address.\n")
    by_references = desk.send(build_mail(COLLEAGUE, "By References.\n", subject="Re: the printer",
                                         in_reply_to=str(ack["Message-ID"])))
    by_tag = desk.send(build_mail(COLLEAGUE, "By the tag.\n", subject=f"Re: [#{source}] Printer is smoking"))

    landed = {m["message_id"]: (m["ticket_id"], m["matched_by"]) for m in desk.messages(target)}
    assert landed[by_address["Message-ID"].strip("<>")] == (target, "reply_address")
    assert landed[by_references["Message-ID"].strip("<>")] == (target, "references")
    assert landed[by_tag["Message-ID"].strip("<>")] == (target, "subject_tag")
    assert desk.messages(source) == [] and desk.ticket(source)["status"] == "closed"
    assert len(desk.events(target, "customer_replied")) == 3 and desk.events(source, "customer_replied") == []
    followed = desk.events(target, "merge_followed")
    assert [e["reason"] for e in followed] == [
        f"mail {m['Message-ID']} names [#{source}], merged into this one" for m in (by_address, by_references, by_tag)]


def test_a_bounce_of_the_sources_mail_marks_the_address_on_the_target(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    ack = desk.last(COLLEAGUE)
    merge(desk.app, source, target)
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        client.sendmail("", ["support@example.com"], delivery_report(str(ack["Message-ID"]).strip("<>"), COLLEAGUE))
    assert drain(desk.app) == 1
    [colleague] = [p for p in desk.rows(t.participants, ticket_id=target) if p["email"] == COLLEAGUE]
    assert colleague["bounced_at"] is not None      # no more automatic mail to them on the target
    assert [e["to_value"] for e in desk.events(target, "bounced")] == [COLLEAGUE]
    assert desk.events(source, "bounced") == []


def test_a_stranger_with_the_source_tag_still_gets_a_new_ticket(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    merge(desk.app, source, target)
    stranger = "mallory@example.net"
    desk.send(build_mail(stranger, "What is in there?\n", subject=f"Re: [#{source}] Printer is smoking"))
    opened = desk.ticket()
    assert opened["id"] not in (source, target) and opened["requester"] == stranger
    assert len(desk.messages(target)) == 2 and desk.messages(source) == []


def test_an_agents_address_for_the_source_commands_the_target(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    merge(desk.app, source, target)
    desk.send(build_mail(ALICE, "#priority high\nWe are on it.\n", subject=f"Re: [#{source}] Printer is smoking",
                         to=desk.agent_address(source, ALICE)))
    assert desk.ticket(target)["priority"] == "high" and desk.ticket(source)["priority"] == "normal"
    [relayed] = desk.events(target, "agent_replied")
    assert relayed["actor"] == ALICE
    # Both customers follow the target now, and both hear the answer.
    assert "We are on it." in body_text(desk.last(CUSTOMER))
    assert "We are on it." in body_text(desk.last(COLLEAGUE))


def test_a_chain_of_merges_leads_to_its_end(desk):
    first = _open(desk, CUSTOMER, "Printer on fire")
    first_ack = desk.last(CUSTOMER)
    second = _open(desk, COLLEAGUE, "Printer is smoking")
    target = _open(desk, BOSS, "Printer outage")
    merge(desk.app, first, second)
    merge(desk.app, second, target)
    assert [desk.ticket(i)["merged_into"] for i in (first, second, target)] == [second, target, None]
    assert _emails(desk, target) == {BOSS: "requester", COLLEAGUE: "follower", CUSTOMER: "follower"}
    with desk.app.engine.begin() as conn:   # looked up, and looked up again under the lock
        assert [final_ticket(conn, i) for i in (first, second, target, 999)] == [target, target, target, None]
        assert lock_final(conn, first) == target

    desk.reply_to(first_ack, CUSTOMER, "Still on fire.\n")
    desk.send(build_mail(CUSTOMER, "And by the tag.\n", subject=f"Re: [#{first}] Printer on fire"))
    assert [m["matched_by"] for m in desk.messages(target)[-2:]] == ["reply_address", "subject_tag"]
    assert desk.messages(first) == desk.messages(second) == []
    assert show_ticket(desk.app.engine, target)["merged_from"] == [first, second]
    listed = {t["id"]: t["merged_from"] for t in list_tickets(desk.app.engine)}
    assert (listed[target], listed[second], listed[first]) == ([first, second], [first], [])


# ---------------------------------------------------------------- refusals and asking


def test_merges_that_make_no_sense_are_refused_and_change_nothing(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    other = _open(desk, BOSS, "Printer outage")
    merge(desk.app, source, target)
    before = {table.name: desk.rows(table) for table in (t.tickets, t.messages, t.participants, t.events)}
    config = _config(desk)
    for args, said in (
            ((target, target), f"ticket [#{target}] cannot be merged into itself"),
            ((99, target), "no ticket 99"),
            ((other, 99), "no ticket 99"),
            ((source, other), f"ticket [#{source}] was already merged into [#{target}]"),
            ((other, source), f"ticket [#{source}] was merged into [#{target}]: merge into [#{target}] instead")):
        for yes in (("--yes",), ()):
            done = run_cli(config, "tickets", "merge", *map(str, args), *yes)
            assert done.returncode == 1, (args, done.stderr)
            assert f"Error: not merged: {said}" in done.stderr and "Traceback" not in done.stderr
    assert {table.name: desk.rows(table) for table in (t.tickets, t.messages, t.participants, t.events)} == before
    with pytest.raises(MergeRefused, match="leads back to"):
        merge(desk.app, target, source)


def test_without_yes_it_shows_the_counts_and_asks_and_without_a_terminal_it_refuses(desk):
    target = _open(desk, CUSTOMER, "Printer on fire")
    source = _open(desk, COLLEAGUE, "Printer is smoking")
    config, args = _config(desk), ("tickets", "merge", str(source), str(target))

    refused = run_cli_without_terminal(config, *args)
    assert refused.returncode == 1
    assert refused.stdout == (f"would merge ticket [#{source}] into [#{target}]: "
                              "messages 1, participants 1, timers cancelled 1\n")
    assert "not merged: no terminal to confirm on; run again with --yes" in refused.stderr
    refused_json = run_cli_without_terminal(config, *args, "--json")
    assert refused_json.returncode == 1 and refused_json.stdout == ""   # stdout stays for JSON
    assert "would merge" in refused_json.stderr

    declined = run_cli_at_a_terminal(config, "n", *args)
    assert declined.returncode == 1 and f"Merge ticket [#{source}] into [#{target}]?" in declined.stdout
    assert desk.ticket(source)["merged_into"] is None and len(desk.messages(source)) == 1

    confirmed = run_cli_at_a_terminal(config, "y", *args)
    assert confirmed.returncode == 0, confirmed.stderr
    assert f"ticket [#{source}] merged into [#{target}]: messages 1" in confirmed.stdout
    assert desk.ticket(source)["merged_into"] == target


# ---------------------------------------------------------------- by mail: #merge


BOB = "bob@example.com"


def test_an_agent_merges_by_mail_their_reply_reaches_the_customer_who_then_follows_the_other(desk):
    """Agents work by mail: `#merge [#N]` on a duplicate merges it as `ticketd tickets merge` does, in
    their name; their words go to the duplicate's customer; the other ticket's agent is told."""
    first = _open(desk, CUSTOMER, "Printer on fire")
    assert desk.assign(first) == ALICE
    second = _open(desk, COLLEAGUE, "Printer is smoking")
    assert desk.assign(second) == BOB
    desk.reply_to(desk.last(BOB), BOB, f"#merge [#{first}]\nThis is the printer of your colleague's ticket; "
                                       "we answer there.\n")

    gone = desk.ticket(second)
    assert (gone["status"], gone["merged_into"]) == ("closed", first)
    [closed] = desk.events(second, "merged_into")
    assert closed["actor"] == BOB and f"by #merge by {BOB}; mail <" in closed["reason"]
    [merged] = desk.events(first, "merged")
    assert merged["actor"] == BOB and f"[#{second}] merged into this one by #merge by {BOB}" in merged["reason"]
    told = desk.last(COLLEAGUE)
    assert "we answer there" in body_text(told)
    assert [m["text"] for m in desk.messages(first)] == [
        "It is on fire.", "It is on fire.", "This is the printer of your colleague's ticket; we answer there."]
    assert _emails(desk, first)[COLLEAGUE] == "follower"
    # Alice, whose ticket it joined, reads what came; Bob's notice names it.
    note = body_text(desk.last(ALICE))
    assert f"Bob worked on ticket [#{first}], which is yours" in note and (
        f'merged [#{second}] "Printer is smoking" from {COLLEAGUE} into it: messages 2' in " ".join(note.split()))
    # The colleague's answer to Bob's mail lands on the first ticket, and Alice's reply reaches both.
    desk.reply_to(told, COLLEAGUE, "It smokes less now.\n")
    assert desk.messages(first)[-1]["text"] == "It smokes less now."
    desk.reply_to(desk.last(ALICE), ALICE, "The technician comes at 3pm.\n")
    assert "3pm" in body_text(desk.last(CUSTOMER)) and "3pm" in body_text(desk.last(COLLEAGUE))


def test_a_merge_by_mail_that_cannot_be_is_rejected_and_changes_nothing(desk):
    first = _open(desk, CUSTOMER, "Printer on fire")
    assert desk.assign(first) == ALICE
    second = _open(desk, COLLEAGUE, "Printer is smoking")
    assert desk.assign(second) == BOB
    for line, why in [(f"#merge [#{second}]", f"ticket [#{second}] cannot be merged into itself"),
                      ("#merge [#99999]", "no ticket 99999"),
                      (f"#merge [#{first}]\n#close", "would change only the ticket that closes")]:
        sent = len(desk.inbox(COLLEAGUE))
        desk.reply_to(desk.last(BOB), BOB, f"{line}\nWe answer on the other ticket.\n")
        rejected = body_text(desk.last(BOB))
        assert why in rejected and "#merge [#1042]  (this ticket joins" in rejected, rejected
        assert desk.ticket(second)["merged_into"] is None and desk.ticket(second)["status"] == "new"
        assert len(desk.inbox(COLLEAGUE)) == sent            # nothing reached the customer
    merge(desk.app, first, second)
    # Into a ticket merged itself: the one to use is named.
    third = _open(desk, BOSS, "Printer outage")
    desk.assign(third)
    agent = desk.ticket(third)["assignee"]
    desk.reply_to(desk.last(agent), agent, f"#merge [#{first}]\n")
    assert f"merge into [#{second}] instead" in body_text(desk.last(agent))
    assert desk.ticket(third)["merged_into"] is None


# ---------------------------------------------------------------- erasure


def test_erasing_a_merge_target_leaves_no_pointer_and_a_link_of_a_chain_is_skipped(desk):
    first = _open(desk, CUSTOMER, "Printer on fire")
    second = _open(desk, COLLEAGUE, "Printer is smoking")
    target = _open(desk, BOSS, "Printer outage")
    alone = _open(desk, "other@example.org", "Scanner jammed")
    merge(desk.app, first, second)
    merge(desk.app, second, target)
    merge(desk.app, alone, target)   # two tickets merged into one

    erase_ticket(desk.app.engine, desk.app.settings.attachments_dir, second, "a test")
    # The middle of the chain went: what was merged into it leads where it led.
    assert desk.ticket(first)["merged_into"] == target

    erase_ticket(desk.app.engine, desk.app.settings.attachments_dir, target, "a test")
    assert [desk.ticket(i)["merged_into"] for i in (first, alone)] == [None, None]
    assert desk.rows(t.tickets, id=target) == []
    # With the pointer gone, a tag from someone no longer anywhere opens a new ticket.
    desk.send(build_mail("other@example.org", "Again.\n", subject=f"Re: [#{alone}] Scanner jammed"))
    assert desk.ticket()["id"] not in (alone, target)


# ---------------------------------------------------------------- the pure decisions


def test_follow_merges_ends_at_the_last_ticket_and_stops_at_a_cycle():
    chain = {1: 2, 2: 3, 3: None}
    assert follow_merges(1, chain.get) == 3 and follow_merges(3, chain.get) == 3
    assert follow_merges(1, {1: 2, 2: 1}.get) == 2     # only a hand-edited database has one
    assert follow_merges(5, {5: 5}.get) == 5


def test_refusal_names_what_to_do_instead():
    plain, merged = {"merged_into": None}, {"merged_into": 7}
    assert refusal(1, 2, plain, plain) is None
    assert refusal(1, 2, plain, {"merged_into": None, "status": "closed"}) is None
    assert refusal(1, 1, plain, plain) == "ticket [#1] cannot be merged into itself"
    assert refusal(1, 2, None, plain) == "no ticket 1" and refusal(1, 2, plain, None) == "no ticket 2"
    assert refusal(1, 2, merged, plain) == "ticket [#1] was already merged into [#7]"
    assert refusal(1, 2, plain, merged, 9) == "ticket [#2] was merged into [#7]: merge into [#9] instead"


def test_joining_makes_the_requester_a_follower_and_keeps_who_is_there():
    people = [{"id": 1, "email": "cust@example.org", "role": "requester"},
              {"id": 2, "email": "Boss@example.org", "role": "follower"},
              {"id": 3, "email": "alice@example.com", "role": "agent"}]
    assert joining(people, ["boss@example.org", "other@example.org"]) == [
        Joining(1, "cust@example.org", "follower"), Joining(2, "boss@example.org", None),
        Joining(3, "alice@example.com", "agent")]
