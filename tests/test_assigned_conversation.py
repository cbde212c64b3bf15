"""The assignment mail carries the ticket's conversation, and an agent's reply quoting it relays only their words."""

from __future__ import annotations

import email
import email.policy
import email.utils
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from outbound.render import Renderer
from tests.cli import cli_ok
from tests.desk import body_text, build_mail, open_desk
from ticketd.assignment import assign_in_tx
from ticketd.clock import utcnow
from ticketd.domain.conversation import SHOWN_MESSAGES, TEXT_CHARS, cut_text, shown_conversation
from ticketd.store import tickets as store
from ticketd.store.read_models import latest_messages
from ticketd.store.tables import timers
from ticketd.timers import fire_due_timers

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(2040)   # 2048 bytes: "2.0 kB"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.fixture
def any_db_desk(make_app, db_url):
    yield from open_desk(make_app, db_url)


# ---------------------------------------------------------------- helpers


def _notice(desk, recipient: str, template: str = "agent/ticket_assigned") -> email.message.EmailMessage:
    """The last mail of `template` queued for `recipient`, parsed from the outbox row's raw bytes."""
    [*_, row] = [r for r in desk.rows(recipient=recipient) if r["template"] == template]
    return email.message_from_bytes(bytes(row["raw"]), policy=email.policy.default)


def _plain(desk, recipient: str, template: str = "agent/ticket_assigned") -> str:
    return _notice(desk, recipient, template).get_body(("plain",)).get_content().replace("\r\n", "\n")


def _html(desk, recipient: str, template: str = "agent/ticket_assigned") -> str:
    return _notice(desk, recipient, template).get_body(("html",)).get_content().replace("\r\n", "\n")


def _header(message: dict, label: str) -> str:
    """The line the notice opens a stored message with."""
    who = f"{message['from_name']} <{message['from_addr']}>"
    return f"--- {message['created_at']:%Y-%m-%d %H:%M} UTC, {who} ({label})"


def _shown(message: dict, label: str) -> str:
    return f"{_header(message, label)}\n\n{message['text'] or '(no text)'}\n"


def _open(desk, body: str = "The printer is on fire.\n", *, mail=None, **kw) -> int:
    desk.send(mail or build_mail(CUSTOMER, body, **kw))
    return desk.ticket()["id"]


def _agent_mail(desk, tid: int, agent: str, body: str, **kw) -> None:
    desk.send(build_mail(agent, body, to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer", **kw))


def _customer_follow_up(desk, tid: int, body: str) -> None:
    desk.send(build_mail(CUSTOMER, body, subject=f"Re: [#{tid}] Printer on fire"))


def _add_messages(app, tid: int, texts: list[str]) -> None:
    """Customer messages stored as ingest stores them, many at once."""
    with app.engine.begin() as conn:
        for text in texts:
            store.add_message(conn, ticket_id=tid, raw_mail_id=None, direction="in", message_id=None,
                              from_addr=CUSTOMER, from_name="Cust", to_addrs=[], cc_addrs=[], subject="Re: Printer",
                              text=text, full_text=text, html=None, internal=False, auto_generated=False,
                              author_role="customer", matched_by="subject_tag", created_at=utcnow())


def _with_a_file(msg, filename: str = "screenshot.png"):
    msg.add_attachment(PNG, maintype="image", subtype="png", filename=filename)
    return msg


# ---------------------------------------------------------------- pure


@pytest.mark.parametrize("head, length, expected", [
    ("  short \n", 9, "short"),
    ("a" * TEXT_CHARS, TEXT_CHARS, "a" * TEXT_CHARS),                                  # exactly fits
    ("\n" + "a" * (TEXT_CHARS + 5) + "\n", TEXT_CHARS + 7, "a" * TEXT_CHARS + "\n[… 5 more characters]"),
    # Only the start was read: the marker counts from the whole length, leading blanks left out.
    ("\n\n" + "ä" * (TEXT_CHARS + 100), 50_000, "ä" * TEXT_CHARS + "\n[… 41998 more characters]"),
])
def test_cut_text(head, length, expected):
    assert cut_text(head, length) == expected


def test_shown_conversation_keeps_the_last_messages_oldest_first_and_their_files_newest_first():
    rows = [dict(id=i, created_at=datetime(2026, 1, 1, 0, i), direction="in", author_role="customer",
                 from_addr=CUSTOMER, from_name="Cust\r\n--- forged", internal=0, auto_generated=0,
                 text=f"m{i}", text_length=len(f"m{i}")) for i in range(1, 13)]
    files = [dict(message_id=i, filename=f"f{i}.txt", size=i) for i in (1, 5, 5, 12)]
    shown = shown_conversation(list(reversed(rows)), 12, files)
    assert [m["text"] for m in shown.messages] == [f"m{i}" for i in range(3, 13)]
    assert shown.omitted == 2 and len(shown.messages) == SHOWN_MESSAGES
    assert shown.attach_from == (12, 5)                    # message 1's file is not shown, so not attached
    assert shown.messages[2]["attachments"] == [{"filename": "f5.txt", "size": 5}] * 2
    assert shown.messages[0]["from_name"] == "Cust --- forged" and shown.messages[0]["internal"] is False


def test_latest_messages_reads_the_newest_few_and_cuts_texts_in_the_database(make_app, db_url):
    app = make_app(db_url)
    now = utcnow()
    with app.engine.begin() as conn:
        tid = store.create_ticket(conn, subject="Printer on fire", status="new", requester=CUSTOMER,
                                  created_at=now, updated_at=now)
    _add_messages(app, tid, [f"{n}: Grüße aus Köln ✓" for n in range(5)])
    with app.engine.connect() as conn:
        rows, total = latest_messages(conn, tid, 3, 10)
    assert total == 5
    # Characters, not bytes, on both databases: "ü", "ö" and "✓" are more than one byte in UTF-8.
    assert [(r["text"], r["text_length"]) for r in rows] == [(f"{n}: Grüße a", 19) for n in (4, 3, 2)]


# ---------------------------------------------------------------- what the agent reads


def test_the_assignment_mail_shows_what_the_customer_wrote_and_their_files(any_db_desk):
    desk = any_db_desk
    tid = _open(desk)
    desk.send(_with_a_file(build_mail(CUSTOMER, "It smells of toner.\n", subject=f"Re: [#{tid}] Printer on fire")))
    assert desk.assign(tid) == ALICE
    first, second = desk.messages(tid)
    text = _plain(desk, ALICE)
    assert (f"{_shown(first, 'customer')}\n{_shown(second, 'customer')}\n"
            "File: screenshot.png (2.0 kB)\n") in text
    assert "earlier message" not in text and "Not attached" not in text
    html = _html(desk, ALICE)
    assert "It smells of toner." in html and "screenshot.png (2.0 kB)" in html
    delivered = desk.last(ALICE)   # the file itself travels with the mail (outbound.attachments)
    assert {part.get_filename(): part.get_content() for part in delivered.iter_attachments()} == {
        "screenshot.png": PNG}


def test_a_file_over_the_size_limit_is_named_not_attached(make_app, sqlite_url):
    for desk in open_desk(make_app, sqlite_url, outbound="  max_attachment_bytes: 3000\n"):
        big = bytes(range(256)) * 40                   # 10 240 bytes: over the limit on its own
        mail = _with_a_file(build_mail(CUSTOMER, "The printer is on fire.\n"))
        mail.add_attachment(big, maintype="application", subtype="octet-stream", filename="dump.bin")
        tid = _open(desk, mail=mail)
        assert desk.assign(tid) == ALICE
        text = body_text(desk.last(ALICE)).replace("\r\n", "\n")
        assert "File: screenshot.png (2.0 kB)\nFile: dump.bin (10.2 kB)\n" in text
        assert "Not attached, over the size limit for one mail:\n  dump.bin (10.2 kB)\n" in text
        assert [part.get_filename() for part in desk.last(ALICE).iter_attachments()] == ["screenshot.png"]


def test_a_reassigned_ticket_shows_replies_and_internal_notes(any_db_desk):
    desk = any_db_desk
    tid = _open(desk)
    assert desk.assign(tid) == ALICE
    _agent_mail(desk, tid, ALICE, "Have you tried turning it off?\n")
    _customer_follow_up(desk, tid, "Yes, it is still burning.\n")
    _agent_mail(desk, tid, ALICE, "#note\nThe customer is a known fraudster, check the invoice.\n")
    _agent_mail(desk, tid, ALICE, "#assign bob@example.com\n")
    assert desk.ticket(tid)["assignee"] == BOB
    opened, reply, burning, note, assign = desk.messages(tid)
    expected = [(opened, "customer"), (reply, "agent"), (burning, "customer"), (note, "agent, internal note")]
    assert "\n".join(_shown(m, label) for m, label in expected) in _plain(desk, BOB)
    # The #assign mail says nothing to read (its change is an event): not shown, not counted.
    assert (assign["internal"], assign["text"]) == (True, "")
    assert "(no text)" not in _plain(desk, BOB) and "not shown" not in _plain(desk, BOB)
    assert "internal note</b>" in _html(desk, BOB)


def test_reassignment_after_a_breached_timer_shows_the_conversation(desk):
    tid = _open(desk)
    assert desk.assign(tid) == ALICE
    _agent_mail(desk, tid, ALICE, "#note\nWaiting for the vendor to call back.\n")
    with desk.app.engine.begin() as conn:   # the respond-within clock ran out
        conn.execute(update(timers).where(timers.c.ticket_id == tid, timers.c.state == "armed")
                     .values(due_at=utcnow() - timedelta(seconds=1)))
    assert fire_due_timers(desk.app) == 1
    assert desk.ticket(tid)["assignee"] == BOB
    opened, note = desk.messages(tid)
    text = _plain(desk, BOB, "agent/timer_breached")
    assert f"{_shown(opened, 'customer')}\n{_shown(note, 'agent, internal note')}" in text
    # The agent it was taken from is told without the conversation: that notice is not give()'s.
    told = _plain(desk, ALICE, "agent/timer_breached")
    assert f"reassigned to Bob <{BOB}>" in told and "The printer is on fire." not in told


def test_a_breach_on_an_unassigned_ticket_shows_its_group_the_conversation(make_app, sqlite_url):
    rules = ("agents:\n  - {email: alice@example.com, name: Alice, groups: [support]}\n"
             "  - {email: bob@example.com, name: Bob, groups: [support]}\n"
             "groups: {support: {assign: round_robin}}\nroutes: [{then: {group: support}}]\n"
             "timers: {new: {respond_within: 1h, on_breach: notify}}\n")
    for desk in open_desk(make_app, sqlite_url, rules=rules):
        tid = _open(desk, mail=_with_a_file(build_mail(CUSTOMER, "Nobody has picked this up.\n")))
        with desk.app.engine.begin() as conn:   # nobody took it, and its respond-within clock ran out
            conn.execute(update(timers).where(timers.c.ticket_id == tid, timers.c.state == "armed")
                         .values(due_at=utcnow() - timedelta(seconds=1)))
        assert fire_due_timers(desk.app) == 1
        assert desk.ticket(tid)["assignee"] is None
        for agent in (ALICE, BOB):
            assert "Nobody has picked this up." in _plain(desk, agent, "agent/timer_breached")
            assert [p.get_filename() for p in _notice(desk, agent, "agent/timer_breached").iter_attachments()] == [
                "screenshot.png"]


def test_an_admins_assignment_from_the_command_line_shows_the_conversation(desk, tmp_path):
    tid = _open(desk, "Der Drucker brennt.\n")
    cli_ok(tmp_path / "ticketd.yaml", "tickets", "assign", str(tid), BOB)
    [opened] = desk.messages(tid)
    text = _plain(desk, BOB)
    assert "(assigned by admin:cli)" in text and _shown(opened, "customer") in text


def test_more_than_ten_messages_show_the_last_ten_and_how_many_are_not_shown(desk):
    tid = _open(desk)
    _add_messages(desk.app, tid, [f"Update {n:02}" for n in range(1, 12)])   # 12 messages in all
    assert desk.assign(tid) == ALICE
    text = _plain(desk, ALICE)
    assert "2 earlier messages are not shown.\n\n--- " in text
    assert "The printer is on fire." not in text and "Update 01" not in text
    assert [line for line in text.splitlines() if line.startswith("Update")] == [
        f"Update {n:02}" for n in range(2, 12)]
    assert text.count("\n--- ") == SHOWN_MESSAGES


def test_a_long_text_is_cut_with_a_marker(any_db_desk):
    desk = any_db_desk
    lines = [f"Zeile {n:04}: Grüße aus Köln, der Drucker brennt ✓" for n in range(400)]   # non-ASCII: characters
    tid = _open(desk, "\n".join(lines) + "\n")
    assert desk.assign(tid) == ALICE
    [stored] = desk.messages(tid)
    assert len(stored["text"]) > TEXT_CHARS + 5000
    text = _plain(desk, ALICE)
    assert f"\n{stored['text'][:TEXT_CHARS]}\n[… {len(stored['text']) - TEXT_CHARS} more characters]\n" in text
    assert lines[-1] not in text


def test_non_ascii_names_and_text_survive_the_mail(any_db_desk):
    desk = any_db_desk
    words = "Grüße aus Köln — der Drucker brennt. 東京の事務所も ✓\nŁódź: żółć"
    tid = _open(desk, words + "\n", name="Jürgen Weiß")
    assert desk.assign(tid) == ALICE
    text = _plain(desk, ALICE)
    assert f" UTC, Jürgen Weiß <{CUSTOMER}> (customer)\n\n{words}\n" in text
    assert words in _html(desk, ALICE)


def test_customer_text_with_template_syntax_is_printed_as_typed(desk):
    typed = "{{7*7}} {% if true %}yes{% endif %} <b>bold</b> {#"
    tid = _open(desk, typed + "\n")
    assert desk.assign(tid) == ALICE
    assert f"\n{typed}\n" in _plain(desk, ALICE)
    html = _html(desk, ALICE)
    assert "{{7*7}} {% if true %}yes{% endif %} &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html


def test_attach_from_names_the_shown_messages_with_files_newest_first(desk):
    tid = _open(desk)
    desk.send(_with_a_file(build_mail(CUSTOMER, "A photo.\n", subject=f"Re: [#{tid}] Printer on fire"), "a.png"))
    assert desk.assign(tid) == ALICE
    _agent_mail(desk, tid, ALICE, "The manual, page 4.\n")
    desk.send(_with_a_file(build_mail(CUSTOMER, "The log.\n", subject=f"Re: [#{tid}] Printer on fire"), "b.png"))
    _, photo, _, log = (m["id"] for m in desk.messages(tid))

    def attach_from() -> tuple[int, ...]:
        with desk.app.engine.connect() as conn:   # rolled back: only the notice is looked at
            [notice] = assign_in_tx(conn, desk.app, tid, BOB, utcnow(), "test")
        return notice.attach_from

    assert attach_from() == (log, photo)
    _add_messages(desk.app, tid, ["more"] * (SHOWN_MESSAGES - 2))   # the photo's message is now the 11th last
    assert attach_from() == (log,)


# ---------------------------------------------------------------- templates without a conversation


@pytest.mark.parametrize("name", ["agent/ticket_assigned", "agent/timer_breached"])
def test_the_templates_render_without_a_conversation(name):
    ticket = dict(id=42, subject="Printer on fire", status="open", priority="normal", requester=CUSTOMER,
                  assignee=ALICE)
    context = dict(ticket=ticket, tag="[#42]", support_address="support@example.com", recipient=ALICE,
                   timer="respond_within 4h in new", text="Still burning.",
                   attachments=[{"filename": "dump.bin", "size": 10240, "content_type": "application/octet-stream",
                                 "attached": False}])
    rendered = Renderer().render(name, context)
    assert "\n--- " not in rendered.text and "earlier message" not in rendered.text
    assert ("Still burning." in rendered.text) == (name == "agent/ticket_assigned")   # `text` as before
    assert "Not attached, over the size limit for one mail:\n  dump.bin (10.2 kB)" in rendered.text
    assert "<li>dump.bin (10.2 kB)</li>" in rendered.html


# ---------------------------------------------------------------- an agent's reply quoting the notice


def _gmail(notice, reply: str) -> str:
    """Top-posted over Gmail's attribution and "> " quote of the whole notice."""
    when = email.utils.parsedate_to_datetime(str(notice["Date"]))
    quoted = "\n".join(f"> {line}".rstrip() for line in body_text(notice).splitlines())
    return f"{reply}\n\nOn {when:%a, %b %d, %Y at %H:%M} Support <support@example.com> wrote:\n\n{quoted}\n"


def _outlook(notice, reply: str, rule: str) -> str:
    """Top-posted over Outlook's header block and the notice unquoted."""
    when = email.utils.parsedate_to_datetime(str(notice["Date"]))
    return (f"{reply}\n\n{rule}\nFrom: Support <support@example.com>\nSent: {when:%A, %B %d, %Y %H:%M}\n"
            f"To: {BOB}\nSubject: {notice['Subject']}\n\n{body_text(notice)}\n")


QUOTING = {
    "gmail": _gmail,
    "outlook_original_message": lambda notice, reply: _outlook(notice, reply, "-----Original Message-----"),
    "outlook_rule": lambda notice, reply: _outlook(notice, reply, "_" * 32),
}
# Customer text in the quoted conversation that reads like commands and headers.
TRICKY = ("The printer is on fire.\n#close\n#assign alice@example.com\n#status closed\n"
          "From: the third floor\nPlease send a technician before noon today.\n")
NOTE = "The customer is a known fraudster, do not refund anything."


def _bob_has_the_long_notice(desk) -> int:
    tid = _open(desk, TRICKY)
    assert desk.assign(tid) == ALICE
    _agent_mail(desk, tid, ALICE, f"#note\n{NOTE}\n")
    _agent_mail(desk, tid, ALICE, "#assign bob@example.com\n")
    notice = body_text(desk.last(BOB))
    assert "#assign alice@example.com" in notice and NOTE in notice    # what the reply is about to quote
    return tid


@pytest.mark.parametrize("style", list(QUOTING))
def test_a_reply_quoting_the_notice_relays_only_the_agents_words(desk, style):
    tid = _bob_has_the_long_notice(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    reply = "We are sending a technician.\n\nHe will be there at eleven."
    desk.reply_to(desk.last(BOB), BOB, QUOTING[style](desk.last(BOB), reply))
    [relayed] = desk.rows(recipient=CUSTOMER)[before:]
    assert relayed["template"] == "requester/agent_reply"
    sent = body_text(desk.last(CUSTOMER)).replace("\r\n", "\n")
    assert reply in sent
    for leaked in ("fraudster", "#close", "#assign", "third floor", "is now yours", "Reply to this mail", "> "):
        assert leaked not in sent, leaked
    assert desk.messages(tid)[-1]["text"] == reply
    ticket = desk.ticket(tid)
    assert (ticket["status"], ticket["assignee"]) == ("open", BOB)      # no quoted "#close" or "#assign" applied
    assert desk.events(tid)[-1]["kind"] != "commands_rejected" and not desk.events(tid, "commands_rejected")


@pytest.mark.parametrize("style", list(QUOTING))
def test_a_note_quoting_the_notice_stays_a_note(desk, style):
    tid = _bob_has_the_long_notice(desk)
    before = len(desk.rows(recipient=CUSTOMER))
    desk.reply_to(desk.last(BOB), BOB, QUOTING[style](desk.last(BOB), "#note\nThe vendor ships the part on Monday."))
    assert desk.rows(recipient=CUSTOMER)[before:] == []
    assert desk.events(tid)[-1]["kind"] == "internal_note"
    stored = desk.messages(tid)[-1]
    assert stored["internal"] and stored["text"] == "The vendor ships the part on Monday."
    assert desk.ticket(tid)["status"] == "new"
