"""`#history`: an agent asks for a ticket's conversation by mail and gets it, files included; nothing changes."""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.store.tables import outbox

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(600)


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


def _agent_mail(desk, tid, body):
    return desk.send(build_mail(ALICE, body, to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer"))


def _history_mails(desk) -> list:
    return [m for m in desk.inbox(ALICE) if str(m["Subject"]).endswith("History: Printer on fire")]


def _ticket(desk) -> int:
    mail = build_mail(CUSTOMER, "The printer is on fire.\n")
    mail.add_attachment(PNG, maintype="image", subtype="png", filename="fire.png")
    desk.send(mail)
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    _agent_mail(desk, tid, "#note\nThe vendor says it is the fuser.\n")
    return tid


def test_history_mails_the_conversation_and_files_and_changes_nothing(desk):
    tid = _ticket(desk)
    before = desk.ticket(tid)
    to_customer = len(desk.rows(outbox, recipient=CUSTOMER))

    _agent_mail(desk, tid, "#history\n")

    [mail] = _history_mails(desk)
    assert str(mail["Subject"]) == f"[#{tid}] History: Printer on fire"
    assert mail["Reply-To"] == desk.agent_address(tid, ALICE) and mail["Auto-Submitted"] == "auto-replied"
    text = body_text(mail).replace("\r\n", "\n")
    assert "The printer is on fire." in text and "The vendor says it is the fuser." in text
    assert "(agent, internal note)" in text and "File: fire.png" in text
    assert text.count("\n--- ") == 2                  # the mail that asked is not part of the answer
    assert {p.get_filename(): p.get_content() for p in mail.iter_attachments()} == {"fire.png": PNG}
    after = desk.ticket(tid)
    assert {k: after[k] for k in ("status", "assignee", "updated_at")} == {
        k: before[k] for k in ("status", "assignee", "updated_at")}
    assert len(desk.rows(outbox, recipient=CUSTOMER)) == to_customer
    assert not [r for r in desk.rows(outbox, recipient=ALICE) if r["template"] == "agent/command_unchanged"]
    stored = desk.messages(tid)[-1]
    assert stored["internal"] and stored["text"] == ""                     # the mail is kept, as any


def test_history_beside_a_command_that_changes_nothing_is_still_answered(desk):
    tid = _ticket(desk)
    _agent_mail(desk, tid, "#close\n")
    _agent_mail(desk, tid, "#close\n#history\n")
    assert len(_history_mails(desk)) == 1
    assert desk.ticket(tid)["status"] == "closed"


def test_history_with_a_reply_relays_the_reply_and_mails_the_history(desk):
    tid = _ticket(desk)
    _agent_mail(desk, tid, "#history\nWe are on it.\n")
    assert "We are on it." in body_text(desk.last(CUSTOMER))
    assert "#history" not in body_text(desk.last(CUSTOMER))
    assert len(_history_mails(desk)) == 1


def test_a_customer_writing_history_gets_no_history(desk):
    tid = _ticket(desk)
    desk.send(build_mail(CUSTOMER, "#history\nWhat happened so far?\n", subject=f"Re: [#{tid}] Printer on fire"))
    assert desk.messages(tid)[-1]["author_role"] == "customer"
    assert not [m for m in desk.sink.messages if CUSTOMER in m.rcpt_tos and b"History:" in m.raw]
    assert "vendor" not in "".join(m.raw.decode("latin-1") for m in desk.sink.messages if CUSTOMER in m.rcpt_tos)
