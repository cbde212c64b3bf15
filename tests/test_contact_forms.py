"""A website's contact form: its mail comes from the form, the customer is in Reply-To (rules.yaml `requester`)."""

from __future__ import annotations

import pytest

from ingest.parse import parse_mail
from tests.desk import body_text, build_mail, open_desk
from ticketd.clock import utcnow
from ticketd.domain.requester import requester_of
from ticketd.rules_dryrun import dry_run
from ticketd.rules_file import RulesError, load_rules_text

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - name: contact form
    if: {from: '^forms@shop\\.example$'}
    then: {requester: reply_to, tags: [web]}
    continue: true
  - then: {group: support}
"""

FORM = "forms@shop.example"
VISITOR = "jane@visitor.example"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, rules=RULES)


def _form_mail(reply_to: str = f'"Jane Visitor" <{VISITOR}>', sender: str = FORM):
    return build_mail(sender, "Name: Jane\nMessage: Where is my order 1234?\n", name="Shop website",
                      subject="Contact form: my order", Reply_To=reply_to)


def test_the_visitor_in_reply_to_is_the_customer_from_the_first_mail_to_the_answer(desk):
    desk.send(_form_mail())
    ticket = desk.ticket()
    tid = ticket["id"]
    assert (ticket["requester"], ticket["requester_name"], ticket["group_name"]) == (VISITOR, "Jane Visitor", "support")
    [event] = desk.events(tid, "requester")
    assert (event["from_value"], event["to_value"]) == (FORM, VISITOR) and "'contact form'" in event["reason"]
    ack = desk.last(VISITOR)
    assert f"[#{tid}]" in str(ack["Subject"]) and "Jane Visitor" in body_text(ack)
    assert desk.inbox(FORM) == []          # the form's own mailbox hears nothing

    agent = desk.assign(tid)
    desk.reply_to(desk.last(agent), agent, "It ships tomorrow.\n")
    assert "It ships tomorrow." in body_text(desk.last(VISITOR)) and desk.inbox(FORM) == []
    # The visitor answers from their own mailbox: the same ticket, no new one.
    desk.reply_to(desk.last(VISITOR), VISITOR, "Thank you! Can I still change the address?\n", name="Jane Visitor")
    assert desk.ticket()["id"] == tid and desk.messages(tid)[-1]["from_addr"] == VISITOR


def test_without_the_route_a_reply_to_changes_nobody(desk):
    """A person's own client may set Reply-To; that person is still the one writing."""
    desk.send(build_mail("bob@customer.example", "The printer is on fire.\n", Reply_To=f"<{VISITOR}>"))
    ticket = desk.ticket()
    assert ticket["requester"] == "bob@customer.example" and desk.events(ticket["id"], "requester") == []
    assert desk.inbox(VISITOR) == [] and len(desk.inbox("bob@customer.example")) == 1


@pytest.mark.parametrize("reply_to", ["", "<alice@example.com>", "<support@example.com>", f"<{FORM}>"])
def test_a_form_mail_without_a_customer_in_reply_to_keeps_its_sender(desk, reply_to):
    """No Reply-To, or one naming an agent or the desk itself: the form's address stays the requester."""
    msg = _form_mail(reply_to)
    if not reply_to:
        del msg["Reply-To"]
    desk.send(msg)
    ticket = desk.ticket()
    assert ticket["requester"] == FORM and desk.events(ticket["id"], "requester") == []
    assert len(desk.inbox(FORM)) == 1 and desk.inbox(VISITOR) == []   # the acknowledgement went to the sender


def test_requester_of_takes_the_first_usable_reply_to_address():
    ours = {"support@example.com", "alice@example.com"}.__contains__
    got = requester_of(FORM, "Shop", FORM, ["support@example.com", VISITOR], "Support", use_reply_to=True,
                       not_a_customer=ours)
    assert (got.address, got.name, got.from_reply_to) == (VISITOR, None, True)   # the name was the desk's
    # A From without an address names nobody to answer: never its text as an address (tests/test_requester_address.py).
    broken = requester_of(None, None, "Broken <", [VISITOR], None, use_reply_to=False, not_a_customer=ours)
    assert (broken.address, broken.name) == ("", "Broken <")
    # A contact form's route still takes its Reply-To.
    assert requester_of(None, None, "Broken <", [VISITOR], None, use_reply_to=True,
                        not_a_customer=ours).address == VISITOR


def test_rules_test_names_the_visitor_and_rules_check_names_the_choices():
    rules = load_rules_text(RULES)
    parsed = parse_mail(_form_mail().as_bytes())
    lines = dry_run(rules, parsed, utcnow()).lines()
    assert f"requester: {VISITOR} (Reply-To; the route says requester: reply_to)" in lines
    assert f"mail: requester/ticket_opened to {VISITOR}" in lines
    with pytest.raises(RulesError) as refused:
        load_rules_text(RULES.replace("requester: reply_to", "requester: replyto"))
    assert "routes[0].then.requester: got 'replyto'; write one of 'from' or 'reply_to'" in str(refused.value)
