"""Who a mail is for, as the delivered mail says it: each copy greets its own reader, and an agent's
assignment mail shows what the conversation's kept mails are and who a public reply reaches."""

from __future__ import annotations

import pytest

from tests.conftest import MINIMAL_RULES
from tests.desk import body_text as _body_text, build_mail, open_desk
from ticketd.rules_watch import reload

CUSTOMER, NICK, PLAIN, ALICE, BOB = (
    "nora@example.org", "nick@example.net", "plain@example.net", "alice@example.com", "bob@example.com")


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def body_text(msg) -> str:
    return _body_text(msg).replace("\r\n", "\n")


def _html(msg) -> str:
    return msg.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")


def _open_with_followers(desk) -> int:
    """Nora writes with Nick (named) and a bare address in Cc; Alice gets the ticket."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", name="Nora Notes",
                         cc=f"Nick <{NICK}>, {PLAIN}"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    return tid


def _agent_mail(desk, tid: int, agent: str, body: str, **kw) -> None:
    desk.send(build_mail(agent, body, to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer", **kw))


def test_a_status_notice_greets_each_recipient_by_their_own_name(desk):
    tid = _open_with_followers(desk)
    # The Cc named him "Nick"; the name on his own mail on the ticket wins.
    desk.send(build_mail(NICK, "Same here on floor 2.\n", name="Nick Follower",
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert desk.ticket()["id"] == tid
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n")
    assert desk.ticket(tid)["status"] == "waiting_customer"
    greetings = {"Hello Nora Notes,": CUSTOMER, "Hello Nick Follower,": NICK, "Hello,": PLAIN}
    for greeting, address in greetings.items():
        mail = desk.last(address)
        assert body_text(mail).startswith(greeting + "\n"), (address, body_text(mail))
        assert f"<p>{greeting}</p>" in _html(mail), address
    assert "we need something from you to go on" in body_text(desk.last(CUSTOMER))
    for address in (NICK, PLAIN):
        assert "Nora" not in body_text(desk.last(address)) and "Nora" not in _html(desk.last(address))
        # A follower is not the one asked ("your ticket" read wrong to them): whoever has the answer may give it.
        assert "we need an answer to go on with ticket" in body_text(desk.last(address))
    _agent_mail(desk, tid, ALICE, "#status open\n")
    assert f"your ticket [#{tid}] is being worked on" in body_text(desk.last(CUSTOMER))
    for address in (NICK, PLAIN):
        assert f"ticket [#{tid}], which you follow, is being worked on" in body_text(desk.last(address))
        assert "your ticket" not in body_text(desk.last(address)) + _html(desk.last(address))


def _bare_from(msg):
    """The mail as a client without a display name sends it: From is the address alone."""
    del msg["From"]
    msg["From"] = ALICE
    return msg


def test_refused_command_mails_are_quoted_to_the_next_assignee_as_refused_under_the_agents_name(desk):
    tid = _open_with_followers(desk)
    for typo in ("opne", "wating"):
        desk.send(_bare_from(build_mail(ALICE, f"#status {typo}\n\nWe are replacing the fuser ({typo}).\n",
                                        to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer")))
    assert [e["kind"] for e in desk.events(tid, "commands_rejected")] == ["commands_rejected"] * 2
    _agent_mail(desk, tid, ALICE, "#assign bob@example.com\n")
    assigned = desk.last(BOB)
    text, html = body_text(assigned), _html(assigned)
    for typo in ("opne", "wating"):
        assert f"We are replacing the fuser ({typo})." in text
    headers = [line for line in text.splitlines() if line.startswith("--- ") and ALICE in line]
    assert len(headers) == 2, text
    for line in headers:
        assert line.endswith(f"Alice <{ALICE}> (agent, refused commands, not sent)"), line
        assert "internal note" not in line
    assert html.count("refused commands, not sent") == 2 and "internal note" not in html
    assert f"Alice &lt;{ALICE}&gt;" in html
    # The customer's mail is still shown as the customer's.
    assert f"Nora Notes <{CUSTOMER}> (customer)" in text


def test_the_assignment_mail_says_who_a_public_reply_goes_to(desk):
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", name="Nora Notes", cc=f"Nick <{NICK}>, {PLAIN}"))
    tid = desk.ticket()["id"]
    desk.send(build_mail(NICK, "Same here on floor 2.\n", name="Nick Follower",
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert desk.assign(tid) == ALICE
    assigned = desk.last(ALICE)
    text, html = body_text(assigned), _html(assigned)
    expected = f"A public reply goes to: Nora Notes <{CUSTOMER}>, Nick Follower <{NICK}>, {PLAIN}"
    assert expected in " ".join(text.split()), text
    assert " ".join(expected.replace("<", "&lt;").replace(">", "&gt;").split()) in " ".join(html.split()), html
    # And it does: the reply reaches each of them.
    desk.reply_to(assigned, ALICE, "We are on it.\n", name="Alice")
    for address in (CUSTOMER, NICK, PLAIN):
        assert body_text(desk.last(address)).startswith("We are on it.")


def test_a_cc_follower_is_greeted_by_the_name_the_cc_gave_them(desk):
    # RFC 2047 names, one with a control character that is cleaned out as From's names are.
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n", name="Nora Notes",
                         cc=f"=?utf-8?q?J=C3=BCrgen_Gro=C3=9F?= <{NICK}>, {PLAIN}"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    # A follow-up's Cc names its newcomer too.
    desk.send(build_mail(CUSTOMER, "Still burning.\n", name="Nora Notes", subject=f"Re: [#{tid}] Printer on fire",
                         cc='"Zo\x01e =?utf-8?b?WsO8cmNoZXI=?=" <zoe@example.net>'))
    assert desk.ticket()["id"] == tid
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n")
    greetings = {"Hello Jürgen Groß,": NICK, "Hello Zo e Zürcher,": "zoe@example.net", "Hello,": PLAIN}
    for greeting, address in greetings.items():
        assert body_text(desk.last(address)).startswith(greeting + "\n"), (address, body_text(desk.last(address)))
    # Their own mail's name wins over the one a Cc gave them.
    desk.send(build_mail(NICK, "Same here on floor 2.\n", name="Jürgen G.", subject=f"Re: [#{tid}] Printer on fire"))
    _agent_mail(desk, tid, ALICE, "#status waiting_customer\n")
    assert body_text(desk.last(NICK)).startswith("Hello Jürgen G.,\n"), body_text(desk.last(NICK))


def test_the_conversation_names_an_agent_as_rules_yaml_does_now(desk):
    tid = _open_with_followers(desk)
    _agent_mail(desk, tid, ALICE, "#note\nThe fuser is on order.\n")
    # rules.yaml renames her (a married name, a typo fixed): the next mail quotes her by the new name.
    assert reload(desk.app, MINIMAL_RULES.replace("name: Alice,", "name: Alice Ames,").encode())
    _agent_mail(desk, tid, ALICE, "#assign bob@example.com\n")
    text = body_text(desk.last(BOB))
    [header] = [line for line in text.splitlines() if line.startswith("--- ") and "internal note" in line]
    assert header.endswith(f"Alice Ames <{ALICE}> (agent, internal note)"), text
