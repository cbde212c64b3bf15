"""Loops and robots: each signal stores the mail on a ticket and sends nothing; caps become events."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from ingest.smtp import Receiver
from outbound.outbox import queue_notices
from tests.desk import body_text, build_mail, open_desk
from tests.sink import customer_mail, delivery_report, outbox_rows, submit, ticket_events
from ticketd.clock import utcnow
from ticketd.domain.loops import auto_generated_reason
from ticketd.domain.notices import AUTO_GENERATED, AUTO_REPLIED, Notice
from ticketd.pipeline import drain
from ticketd.store.tables import messages, participants, tickets


def _signal_cases():
    """(name, mail headers, SMTP MAIL FROM, raw override)."""
    return [
        ("auto-replied", {"Auto_Submitted": "auto-replied"}, None),
        ("auto-generated", {"Auto_Submitted": "auto-generated"}, None),
        ("null return path", {}, ""),
        ("mailer-daemon From", {"_sender": "MAILER-DAEMON@mx.example.org"}, None),
        ("tagged noreply From", {"_sender": "noreply+order-4711@shop.example.org"}, None),
        ("Precedence bulk", {"Precedence": "bulk"}, None),
        ("Precedence junk", {"Precedence": "junk"}, None),
        ("Precedence list", {"Precedence": "list"}, None),
        ("List-Id", {"List_Id": "<news.lists.example.org>"}, None),
        ("X-Auto-Response-Suppress", {"X_Auto_Response_Suppress": "All"}, None),
        ("X-Loop", {"X_Loop": "cust@example.org"}, None),
        ("Exchange inbox rule", {"X_MS_Exchange_Generated_Message_Source": "Mailbox Rules Agent"}, None),
        ("Exchange inbox rules loop", {"X_MS_Exchange_Inbox_Rules_Loop": "cust@example.org"}, None),
        ("multipart/report DSN", {"_raw": delivery_report("unknown-1@example.net", "someone@nowhere.example")}, None),
        ("our Message-ID reflected", {"_our_message_id": True}, None),
        ("our own From", {"_sender": "support@example.com"}, None),
    ]


@pytest.fixture
def intake(make_app, sqlite_url):
    app = make_app(sqlite_url)
    receiver = Receiver(app)
    receiver.start()
    yield app
    receiver.stop()


@pytest.mark.parametrize("name,headers,mail_from", _signal_cases(), ids=[c[0] for c in _signal_cases()])
def test_robot_mail_is_stored_and_nothing_is_sent(intake, name, headers, mail_from):
    app = intake
    headers = dict(headers)
    raw = headers.pop("_raw", None)
    sender = headers.pop("_sender", "cust@example.org")
    if headers.pop("_our_message_id", False):
        from ingest.match import new_message_id
        headers["message_id"] = f"<{new_message_id(app.signer, 'example.com', None)}>"
    import smtplib

    with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
        if raw is not None:
            client.sendmail("", ["support@example.com"], raw)
        else:
            msg = customer_mail(subject=f"Loop test {name}", sender=sender, **headers)
            client.send_message(msg, from_addr=mail_from if mail_from is not None else sender)
    assert drain(app) == 1
    with app.engine.connect() as conn:
        [message] = conn.execute(select(messages)).mappings().all()
    assert message["auto_generated"] is True
    assert message["ticket_id"] is not None
    assert outbox_rows(app) == []
    assert [e["kind"] for e in ticket_events(app, message["ticket_id"], "not_answered")] == ["not_answered"]


def _open_ticket(app, sender="cust@example.org", **headers) -> int:
    submit(app, customer_mail(sender=sender, **headers))
    drain(app)
    with app.engine.connect() as conn:
        return conn.execute(select(tickets.c.id).order_by(tickets.c.id.desc())).scalars().first()


def _queue(app, *notices):
    with app.engine.begin() as conn:
        return queue_notices(conn, app, list(notices), utcnow())


def test_suppressed_notices_become_events_not_mail(intake):
    app = intake
    ticket_id = _open_ticket(app)
    assert [r["template"] for r in outbox_rows(app)] == ["requester/ticket_opened"]
    cases = [
        (Notice("requester/ticket_opened", "cust@example.org", ticket_id, auto_submitted=AUTO_REPLIED),
         "already acknowledged"),
        (Notice("requester/status_changed", "support@example.com", ticket_id, context={"status": "open"}),
         "our own address"),
        (Notice("requester/status_changed", "support+t1.abc@example.com", ticket_id, context={"status": "open"}),
         "our own address"),
        (Notice("requester/status_changed", "mailer-daemon@example.org", ticket_id, context={"status": "open"}),
         "robot"),
        (Notice("requester/agent_reply", "noreply@example.org", ticket_id, auto_submitted=None,
                context={"text": "hi", "agent_name": "Alice"}), "robot"),
        # A former agent (gone from rules.yaml) keeps closed tickets in the history, and gets none of their news.
        (Notice("agent/delivery_failed", "gone@example.com", ticket_id, agent_reply_to="gone@example.com",
                context={"failed_recipient": "cust@example.org", "failed_template": "requester/agent_reply",
                         "reason": "550 no such user"}), "no agent in rules.yaml"),
    ]
    for notice, _ in cases:
        assert _queue(app, notice) == []
    reasons = [e["reason"] for e in ticket_events(app, ticket_id, "mail_suppressed")]
    assert len(reasons) == len(cases)
    for reason, (_, expected) in zip(reasons, cases):
        assert expected in reason
    assert len(outbox_rows(app)) == 1


def test_bounced_address_gets_nothing(intake):
    app = intake
    ticket_id = _open_ticket(app)
    with app.engine.begin() as conn:
        conn.execute(update(participants).where(participants.c.email == "cust@example.org")
                     .values(bounced_at=utcnow()))
    assert _queue(app, Notice("requester/status_changed", "cust@example.org", ticket_id,
                              context={"status": "open"})) == []
    [event] = ticket_events(app, ticket_id, "mail_suppressed")
    assert "bounced" in event["reason"]


def test_automatic_mail_per_recipient_per_hour_is_capped(make_app, sqlite_url):
    app = make_app(sqlite_url, extra="auto_mails_per_recipient_per_hour: 3\n")
    receiver = Receiver(app)
    receiver.start()
    try:
        ids = [_open_ticket(app, subject=f"Cap {n}") for n in range(5)]
    finally:
        receiver.stop()
    assert len(outbox_rows(app)) == 3
    for ticket_id in ids[3:]:
        [event] = ticket_events(app, ticket_id, "mail_suppressed")
        assert "rate limit" in event["reason"]
    # A human agent's relayed reply is not automatic: never capped.
    assert len(_queue(app, Notice("requester/agent_reply", "cust@example.org", ids[4], auto_submitted=None,
                                  context={"text": "Here you go", "agent_name": "Alice"}))) == 1
    # Agents' notifications are their work: not capped either.
    for ticket_id in ids:
        assert len(_queue(app, Notice("agent/ticket_assigned", "alice@example.com", ticket_id,
                                      auto_submitted=AUTO_GENERATED, agent_reply_to="alice@example.com"))) == 1


# ---------------------------------------------------------------- markers beyond RFC 3834

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.mark.parametrize(("headers", "from_addr", "says"), [
    # procmail (formail -A "X-Loop: …") and list managers name themselves; so may whoever answered.
    ({"x-loop": "alice@example.com"}, ALICE, "X-Loop"),
    ({"x-loop": "Alice <Alice@Example.com>"}, ALICE, "X-Loop"),
    ({"x-loop": "yes"}, CUSTOMER, "X-Loop"),
    # Exchange / Outlook inbox rules: an "automatic reply" or forward rule writes a new mail.
    ({"x-ms-exchange-generated-message-source": "Mailbox Rules Agent"}, ALICE, "Mailbox Rules Agent"),
    ({"x-ms-exchange-generated-message-source": "mailbox rules agent"}, ALICE, "Mailbox Rules Agent"),
    ({"x-ms-exchange-inbox-rules-loop": "Alice@Example.com"}, ALICE, "X-MS-Exchange-Inbox-Rules-Loop"),
    ({"x-ms-exchange-inbox-rules-loop": "<alice@example.com>"}, ALICE, "X-MS-Exchange-Inbox-Rules-Loop"),
    # No field at all, only the subject an out-of-office answer writes.
    ({"subject": "Automatic reply: [#7] Printer on fire"}, ALICE, "automatic reply's subject"),
    ({"subject": "Out of Office: [#7] Printer on fire"}, ALICE, "automatic reply's subject"),
    ({"subject": "AutoReply: Re: [#7] Printer"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Automatische Antwort: [#7] Drucker"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Réponse automatique : [#7] Imprimante"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Автоматический ответ: [#7] Принтер"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "自动回复：[#7] 打印机"}, CUSTOMER, "automatic reply's subject"),
    # Other clients' and rules' prefixes: each rejected a proposed solution with its out-of-office text.
    ({"subject": "Abwesend: Re: [#7] Drucker"}, CUSTOMER, "(Abwesend:)"),
    ({"subject": "Vacation: Re: [#7] Printer"}, CUSTOMER, "(Vacation:)"),
    ({"subject": "I am out of the office: Re: [#7] Printer"}, CUSTOMER, "(I am out of the office:)"),
    ({"subject": "Absence: Re: [#7] Printer"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Abwesenheitsnotiz: [#7] Drucker"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Respuesta automática: Re: [#7] Impresora"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Autosvar: [#7] Skrivare"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Automatisch antwoord: [#7] Printer"}, CUSTOMER, "automatic reply's subject"),
    ({"subject": "Out of office: Re: [#7] Printer"}, CUSTOMER, "automatic reply's subject"),
])
def test_loop_and_inbox_rule_markers_mean_automatic(headers, from_addr, says):
    assert says in (auto_generated_reason(headers, None, from_addr) or "")


@pytest.mark.parametrize("headers", [
    {},
    {"auto-submitted": "no"},
    # A rule of another mailbox redirected the customer's own mail to us: a
    # person wrote it, and the acknowledgement goes to them, not to the rule.
    {"x-ms-exchange-inbox-rules-loop": "frontdesk@example.net"},
    {"x-ms-exchange-generated-message-source": ""},
    # A procmail recipe forwarding info@ to support names itself; the customer wrote the mail.
    {"x-loop": "info@example.com"},
    # A person writing about such answers, or an answer quoted further on.
    {"subject": "Our automatic reply is broken"},
    {"subject": "Re: Automatic reply: [#7] Printer on fire"},
    {"subject": "Out of office messages: how do I set them?"},
    # A new question about a product's own automatic replies: no subject of ours follows the prefix.
    {"subject": "Auto-reply: stops working after the update"},
    {"subject": "Out of office: how do I set one up for my team?"},
    # Only the colon form before a subject of ours is an answering machine's.
    {"subject": "Vacation request [#7] approved?"}, {"subject": "Vacation: who covers next week?"},
    {"subject": "Re: Vacation: [#7] Printer"},
], ids=["nothing", "Auto-Submitted no", "redirected by another's rule", "empty source", "forwarded by a recipe",
        "about automatic replies", "a reply to one", "a question about them", "a new question", "another",
        "vacation request", "vacation without a tag", "a reply to a vacation notice"])
def test_a_persons_mail_is_not_automatic(headers):
    assert auto_generated_reason(headers, "cust@example.org", CUSTOMER) is None


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.mark.parametrize("headers", [
    {"X_Loop": ALICE},
    {"X_MS_Exchange_Generated_Message_Source": "Mailbox Rules Agent", "Thread_Topic": "Printer on fire"},
    {"X_MS_Exchange_Inbox_Rules_Loop": ALICE},
    {},
], ids=["X-Loop", "Exchange inbox rule", "Exchange inbox rules loop", "only its subject"])
def test_an_agents_out_of_office_marked_otherwise_is_not_relayed(desk, headers):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    before = len(desk.inbox(CUSTOMER))
    desk.send(build_mail(ALICE, "I am out of the office until Monday.\n", to=desk.agent_address(tid, ALICE),
                         subject=f"Automatic reply: [#{tid}] Printer on fire", **headers))
    assert len(desk.inbox(CUSTOMER)) == before
    assert desk.ticket(tid)["status"] == "new"
    [event] = desk.events(tid, "not_relayed")
    assert "automatic mail" in event["reason"]


@pytest.mark.parametrize("subject", ["Abwesend: Re: [#{tid}] Printer on fire", "Vacation: Re: [#{tid}] Printer on fire",
                                     "I am out of the office: Re: [#{tid}] Printer on fire"])
def test_an_out_of_office_answer_without_rfc_3834_fields_leaves_a_proposal_standing(desk, subject):
    """Its subject's prefix says a machine answered: "I'm on vacation" is no reason to reject the solution."""
    desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    desk.assign(tid)
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nReplace the fuser unit.\n")
    proposal = desk.last(CUSTOMER)
    desk.send(build_mail(CUSTOMER, "I'm on vacation until the 3rd.\n", to=str(proposal["Reply-To"]),
                         subject=subject.format(tid=tid), in_reply_to=str(proposal["Message-ID"])))
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.events(tid, "rejected") == []


@pytest.mark.parametrize("headers", [{"List_Id": "<help.groups.example.org>"}, {"Precedence": "list"}],
                         ids=["List-Id", "Precedence list"])
def test_a_customers_answer_through_a_list_reaches_the_assignee_and_nobody_else(desk, headers):
    """It changed nothing and told nobody: the answer went unseen while the ticket waited to be closed."""
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\nWhich model is it?\n")
    question = desk.last(CUSTOMER)
    before = len(desk.inbox(CUSTOMER))
    desk.send(build_mail(CUSTOMER, "It is the LaserJet 4000.\n", to=str(question["Reply-To"]),
                         subject=f"Re: [#{tid}] Printer on fire", in_reply_to=str(question["Message-ID"]), **headers))
    told = desk.last(ALICE)
    assert "It is the LaserJet 4000." in body_text(told) and "sent through a mailing list" in body_text(told)
    assert len(desk.inbox(CUSTOMER)) == before         # nothing automatic back to the list's readers
    assert desk.ticket(tid)["status"] == "waiting_customer"
    [event] = desk.events(tid, "automatic_mail")
    assert "sent through a mailing list" in event["reason"]


def test_a_newsletters_unsubscribe_link_alone_is_bulk_mail():
    assert auto_generated_reason({"list-unsubscribe": "<mailto:leave@news.example>"}, "n@news.example",
                                 "n@news.example") == "bulk mail (List-Unsubscribe)"


@pytest.mark.parametrize("field", ["x-loop", "x-ms-exchange-inbox-rules-loop"])
def test_a_long_loop_field_without_an_address_is_read_in_linear_time(field):
    """Its addresses were looked for from every character: 100 kB of one word took minutes."""
    started = time.perf_counter()
    auto_generated_reason({field: "-" * 100_000}, None, "cust@example.org")
    assert time.perf_counter() - started < 5
