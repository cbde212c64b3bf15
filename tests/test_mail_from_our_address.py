"""A person's mail From one of our own addresses (the shared support mailbox in webmail, a +token form).

It is not ticketd's own mail come back (that carries a signed Message-ID
and Auto-Submitted), yet ticketd never answers its own address: it is
kept unanswered. A new ticket's customer is then the first address it
was written to that is not ours nor an agent's (a colleague writing to a
customer on the desk's behalf); with none, the ticket has no address to
answer and an agent's public reply is refused, the agent told.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import write_config
from tests.desk import body_text, build_mail, open_desk
from ticketd.cli import main
from ticketd.store.tables import participants, tickets

ALICE = "alice@example.com"
JOHN = "john@client.example.org"
MARY = "mary@client.example.org"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _recipients(desk) -> set[str]:
    return {r for m in desk.sink.messages for r in m.rcpt_tos}


@pytest.mark.parametrize("ours", ["support@example.com", "support+webmail@example.com"])
def test_mail_from_our_address_to_a_customer_opens_a_ticket_for_that_customer(desk, ours):
    # Written in the shared mailbox to a customer, support Bcc'd: our MX gets only our address.
    desk.send(build_mail(ours, "We saw your call about the printer; we are on it.\n", name="Support",
                         to=f'"John Smith" <{JOHN}>', cc=f'"Mary Major" <{MARY}>, {ALICE}'),
              envelope_to=["support@example.com"])
    ticket = desk.ticket()
    tid = ticket["id"]
    assert (ticket["requester"], ticket["requester_name"]) == (JOHN, "John Smith")
    [why] = desk.events(tid, "requester")
    assert why["from_value"] == ours and why["to_value"] == JOHN and "our own address" in why["reason"]
    [kept] = desk.events(tid, "not_answered")
    assert ours in kept["reason"]
    followers = {r["email"] for r in desk.rows(participants, ticket_id=tid, role="follower")}
    assert followers == {MARY}   # an agent in Cc is no follower
    assert _recipients(desk) == set()   # the customer has the mail itself: no acknowledgement

    assert desk.assign(tid) == ALICE
    desk.send(build_mail(ALICE, "Fixed: the fuser was replaced.\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert "Fixed: the fuser was replaced." in body_text(desk.last(JOHN))
    assert "Fixed: the fuser was replaced." in body_text(desk.last(MARY))


@pytest.mark.parametrize("ours", ["support@example.com", "support+webmail@example.com"])
def test_mail_from_our_address_naming_no_one_else_refuses_public_replies_and_tells_the_agent(desk, ours):
    desk.send(build_mail(ours, "Note to self: restock toner.\n", name="Support", to="support@example.com",
                         cc=ALICE))
    ticket = desk.ticket()
    tid = ticket["id"]
    assert ticket["requester"] == ""
    [why] = desk.events(tid, "requester")
    assert why["from_value"] == ours and why["to_value"] is None and "our own address" in why["reason"]
    assert desk.rows(participants, ticket_id=tid) == []
    assert desk.assign(tid) == ALICE
    assert _recipients(desk) == {ALICE}

    desk.send(build_mail(ALICE, "Done, toner ordered.\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert _recipients(desk) == {ALICE}
    assert "no address to answer" in body_text(desk.last(ALICE))
    assert [e["kind"] for e in desk.events(tid, "commands_rejected")] == ["commands_rejected"]


def test_a_reply_from_our_address_on_a_ticket_is_kept_and_the_assignee_reads_it(desk):
    # The customer's ticket, assigned; then a colleague answers them from the shared mailbox (webmail),
    # support in Cc: the customer has that mail; ticketd keeps it, answers no one, and the assignee learns of it.
    first = desk.send(build_mail(JOHN, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    before = desk.ticket(tid)
    # A reply to John's mail as it lies in the shared mailbox: it names that mail (RFC 5322 3.6.4).
    desk.send(build_mail("support@example.com", "Pull the plug, we are on our way.\n", name="Support",
                         to=JOHN, cc="support@example.com", subject="Re: Printer on fire",
                         in_reply_to=first["Message-ID"]),
              envelope_to=["support@example.com"])
    assert len(desk.rows(tickets)) == 1
    told = desk.last(ALICE)
    assert "Pull the plug, we are on our way." in body_text(told)
    assert "our own address support@example.com" in body_text(told)
    assert _recipients(desk) == {JOHN, ALICE}   # John's acknowledgement and Alice's two notices, nothing more
    assert len(desk.inbox(JOHN)) == 1
    after = desk.ticket(tid)
    assert (after["status"], after["assignee"]) == (before["status"], before["assignee"])
    assert [e["kind"] for e in desk.events(tid, "automatic_mail")] == ["automatic_mail"]


def test_rules_test_with_the_daemons_config_does_what_the_daemon_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/none.db")
    mail = tmp_path / "ours.eml"
    mail.write_bytes(build_mail("support@example.com", "We saw your call; we are on it.\n", name="Support",
                                to=f'"John Smith" <{JOHN}>', cc=ALICE).as_bytes())
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "rules.yaml"), str(mail),
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (f"requester: written from our own address support@example.com to {JOHN}, the first address it names "
            "that is not ours nor an agent's: replies go there, and no acknowledgement is sent") in lines
    assert "not answered: from our own address support@example.com: ticketd never answers its own addresses" in lines
    assert not any(line.startswith("mail: requester/") for line in lines), lines
    assert "acknowledgement: none (not answered, below)" in lines[3]
