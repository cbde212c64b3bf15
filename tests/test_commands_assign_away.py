"""`#assign <agent>` naming an agent who is away is refused, saying until when and what to write instead.

PRODUCT.md, "Agents by email": a command that cannot be applied leaves the
ticket unchanged and the agent is told exactly what was wrong. A ticket given
to an agent who is away (rules.yaml's `away: true`, their own `#away`, an
admin's `ticketd agents away`) would wait unseen until a respond timer moved it.
"""

from __future__ import annotations

import json
import smtplib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.cli import cli_ok
from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.desk import build_mail
from tests.sink import Sink, customer_mail, wait_until
from ticketd.domain.commands import USAGE, plan_commands, read_agent_reply
from ticketd.rules_file import load_rules_text

CUSTOMER, ALICE, BOB, CAROL, DAVE = ("cust@example.org", "alice@example.com", "bob@example.com",
                                     "carol@example.com", "dave@example.com")
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support], timezone: Asia/Tokyo}
  - {email: bob@example.com,   name: Bob,   groups: [support, billing]}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
  - {email: dave@example.com,  name: Dave,  groups: [billing]}
groups:
  support: {assign: round_robin}
  billing: {assign: round_robin}
routes:
  - then: {group: support}
"""
NOW = datetime(2030, 6, 1, 12, 0)


# ---------------------------------------------------------------- the decision (pure)


def _refusals(absent=None, counts=None, writer=ALICE, rules=RULES):
    from ticketd.domain.absence import assign_refusals

    return assign_refusals(load_rules_text(rules), absent or {}, counts or {}, writer=writer,
                           zone=load_rules_text(rules).zone_of(writer))


def test_an_agent_away_in_rules_yaml_is_refused_with_a_group_and_available_agents_to_name():
    refusals = _refusals()
    assert set(refusals) == {CAROL}
    said = refusals[CAROL]
    assert said.startswith("carol@example.com is away (rules.yaml marks them away; only an admin changes that)")
    # Her group, which picks an available agent by its strategy, or an available agent by name.
    assert "#assign billing" in said and "#assign dave@example.com" in said and "#assign bob@example.com" in said
    assert "#assign carol@example.com" not in said and "#assign alice@example.com" not in said   # the writer


def test_an_own_absence_says_until_when_in_the_writers_zone():
    until = datetime(2030, 6, 10, 7, 30)
    said = _refusals(absent={DAVE: (NOW, until)})[DAVE]
    assert said.startswith("dave@example.com is away until 2030-06-10 16:30 Asia/Tokyo")   # Alice reads Tokyo
    assert "#assign dave@example.com" not in said and "#assign carol@example.com" not in said
    assert "#assign billing" in said and "#assign bob@example.com" in said   # Bob is left in billing
    assert _refusals(absent={DAVE: (NOW, None)})[DAVE].startswith("dave@example.com is away until they write #back")


def test_a_group_where_nobody_else_is_available_is_not_offered():
    said = _refusals(absent={DAVE: (NOW, None)})[DAVE]
    assert "#assign billing" in said and "#assign bob@example.com" in said
    # Bob at his max_open, Carol and Dave away: billing has nobody; support only Alice, who writes.
    full = RULES.replace("Bob,   groups", "Bob, max_open: 1, groups")
    said = _refusals(absent={DAVE: (NOW, None)}, counts={BOB: 1}, rules=full)[DAVE]
    assert "#assign" not in said and "nobody else is available to take it now" in said


def test_the_writer_taking_a_ticket_while_away_is_no_refusal():
    assert DAVE not in _refusals(absent={DAVE: (NOW, None)}, writer=DAVE)


def test_plan_refuses_an_away_agent_and_keeps_the_others():
    reply = read_agent_reply("#assign Carol <carol@example.com>\n#priority high\nPlease take this.\n")
    planned = plan_commands(reply, now=NOW, agents=[ALICE, BOB, CAROL], groups=["support", "billing"],
                            away={CAROL: "carol@example.com is away (rules.yaml)."})
    assert not planned.ok and planned.assign_to is None and planned.priority is None
    assert planned.errors == ("#assign Carol <carol@example.com>: carol@example.com is away (rules.yaml).",)
    assert USAGE["assign"] in planned.usage
    reply = read_agent_reply("#assign bob@example.com\n")
    assert plan_commands(reply, now=NOW, agents=[ALICE, BOB, CAROL], groups=[],
                         away={CAROL: "away"}).assign_to == BOB


# ---------------------------------------------------------------- through the daemon


@pytest.fixture
def daemon(tmp_path, sqlite_url):
    sink = Sink(free_port()).start()
    port = free_port()
    config = write_config(tmp_path, sqlite_url, rules=RULES, smtp_port=port, outbound_port=sink.port)
    process = DaemonProcess(config).start()
    try:
        yield sink, config, port
    finally:
        process.stop()
        sink.stop()


def _to(sink, recipient: str, subject: str) -> list:
    return [m.message for m in sink.messages if recipient in m.rcpt_tos and str(m.message["Subject"]).startswith(subject)]


def _reply(port: int, notice, sender: str, body: str) -> None:
    mail = build_mail(sender, body, to=str(notice["Reply-To"]), subject="Re: " + str(notice["Subject"]),
                      in_reply_to=str(notice["Message-ID"]))
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(mail)


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_assigning_an_away_agent_by_mail_is_refused_and_the_ticket_stays(daemon):
    sink, config, port = daemon
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(customer_mail(subject="Printer on fire"))
    [notice] = wait_until(lambda: _to(sink, ALICE, "[#1] Assigned to you"), timeout=20)

    # rules.yaml's `away: true`
    _reply(port, notice, ALICE, "#assign carol@example.com\n\nCarol, this one is yours.\n")
    [refused] = wait_until(lambda: _to(sink, ALICE, "[#1] Command not applied"), timeout=20)
    said = " ".join(_text(refused).split())
    assert "#assign carol@example.com: carol@example.com is away (rules.yaml marks them away" in said
    assert "#assign billing" in said and "#assign dave@example.com" in said
    ticket = json.loads(cli_ok(config, "tickets", "show", "1", "--json"))
    assert ticket["assignee"] == ALICE
    assert [e for e in ticket["events"] if e["kind"] == "commands_rejected"]
    # Her words went nowhere but back to her, with the refusal.
    assert not _to(sink, CAROL, "") and not [m for m in sink.messages if "Carol, this one" in _text(m.message)
                                             and m.rcpt_tos != [ALICE]]
    assert "Carol, this one is yours." in _text(refused)

    # An absence an admin sets (as the agent's own #away does), until a time shown in Alice's zone.
    cli_ok(config, "agents", "away", DAVE, "--until", "3d")
    [dave] = [a for a in json.loads(cli_ok(config, "agents", "list", "--json")) if a["email"] == DAVE]
    until = datetime.fromisoformat(dave["absence"]["until"])
    tokyo = until.astimezone(ZoneInfo("Asia/Tokyo"))
    _reply(port, notice, ALICE, "#assign dave@example.com\n")
    [_, refused] = wait_until(lambda: _to(sink, ALICE, "[#1] Command not applied")[1:] and
                              _to(sink, ALICE, "[#1] Command not applied"), timeout=20)
    said = " ".join(_text(refused).split())
    assert f"dave@example.com is away until {tokyo:%Y-%m-%d %H:%M} Asia/Tokyo" in said
    assert "#assign billing" in said and "#assign bob@example.com" in said and "#assign carol" not in said
    assert json.loads(cli_ok(config, "tickets", "show", "1", "--json"))["assignee"] == ALICE

    # The group named instead gives it to an available agent by its strategy.
    _reply(port, notice, ALICE, "#assign billing\n")
    wait_until(lambda: _to(sink, BOB, "[#1] Assigned to you"), timeout=20)
    assert json.loads(cli_ok(config, "tickets", "show", "1", "--json"))["assignee"] == BOB
