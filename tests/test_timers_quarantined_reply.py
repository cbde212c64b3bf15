"""A customer's reply set aside in quarantine holds the waiting ticket's reminder and auto-close.

PRODUCT.md: waiting_customer warns, then closes, when the customer is
silent; `ticketd quarantine` keeps mail that could not be processed, whole,
to be re-driven. A customer whose answer failed processing (past the MIME
limits, say) has not been silent: closing the ticket "with no answer" tells
them the opposite of what happened, and their answer is news to nobody. The
reply is known by its head alone (the ticket's tag from its requester, or
References naming the ticket's mail); the hold ends when an admin retries or
dismisses it.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta

from tests.cli import cli_ok
from tests.desk import build_mail, open_desk
from tests.test_timers import rules
from tests.test_timers_unprocessed_mail import CUSTOMER, _waiting
from ticketd.clock import utcnow
from ticketd.pipeline import drain
from ticketd.store.tables import timers
from ticketd.timers import armed, fire_due_timers
from ticketd.views import list_quarantine

STRANGER = "eve@example.net"
LIMITS = "max_mime_depth: 3\n"


def _too_deep(sender: str, subject: str, reply_to: str | None = None) -> bytes:
    """A reply whose text sits deeper in multiparts than LIMITS allow: quarantined."""
    body = b"Content-Type: text/plain\r\n\r\nIt is a LaserJet 4.\r\n"
    for n in range(5):
        body = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n) + body
                + b"\r\n--b%d--\r\n" % n)
    threading = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <deep.{utcnow().timestamp()}@client.example.org>\r\n{threading}MIME-Version: 1.0\r\n"
            ).encode() + body


def _quarantined(desk, sender: str, raw: bytes) -> int:
    """Hand the mail over SMTP and process it: it is quarantined; its raw id."""
    with smtplib.SMTP("127.0.0.1", desk.receiver.port, timeout=10) as client:
        client.sendmail(sender, ["support@example.com"], raw)
    assert drain(desk.app) == 1
    desk.flush()
    [held] = [q for q in list_quarantine(desk.app.engine)]
    return held["id"]


def _overdue(desk, tid: int) -> None:
    """The ticket's warn and close are both past due."""
    with desk.app.engine.begin() as conn:
        for row in armed(conn, tid):
            if row["kind"] in ("warn", "close"):
                conn.execute(timers.update().where(timers.c.id == row["id"])
                             .values(due_at=utcnow() - timedelta(seconds=1)))


def test_a_quarantined_reply_by_its_tag_holds_the_close_until_it_is_dismissed(make_app, db_url, tmp_path):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        tid, agent = _waiting(desk)
        raw_id = _quarantined(desk, CUSTOMER, _too_deep(CUSTOMER, f"Re: [#{tid}] Printer on fire"))
        _overdue(desk, tid)
        assert fire_due_timers(desk.app) == 0
        assert desk.ticket(tid)["status"] == "waiting_customer"
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []
        # The history and the assignee say what waits, and how to re-drive it.
        [noted] = desk.events(tid, "reply_quarantined")
        assert f"ticketd quarantine retry {raw_id}" in noted["reason"] and CUSTOMER in noted["reason"]
        told = desk.last(agent).get_body(("plain",)).get_content()
        assert f"ticketd quarantine retry {raw_id}" in told

        # Dismissed, it answers nothing: the wait's timers go on, the late warning giving its whole grace.
        cli_ok(tmp_path / "ticketd.yaml", "quarantine", "dismiss", str(raw_id))
        assert fire_due_timers(desk.app) == 1
        assert len(desk.events(tid, "waiting_reminder")) == 1
        assert desk.ticket(tid)["status"] == "waiting_customer"
    finally:
        desk_gen.close()


def test_a_quarantined_reply_by_its_references_holds_warning_and_close(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        tid, _ = _waiting(desk)
        question = desk.last(CUSTOMER)
        _quarantined(desk, CUSTOMER, _too_deep(CUSTOMER, "Re: the printer", reply_to=str(question["Message-ID"])))
        _overdue(desk, tid)
        assert fire_due_timers(desk.app) == 0
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []
        assert len(desk.events(tid, "reply_quarantined")) == 1
    finally:
        desk_gen.close()


def test_a_strangers_quarantined_mail_with_the_tag_holds_nothing(make_app, db_url):
    """PRODUCT.md threading: a tag counts only from the ticket's participants."""
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        tid, _ = _waiting(desk)
        _quarantined(desk, STRANGER, _too_deep(STRANGER, f"Re: [#{tid}] Printer on fire"))
        assert desk.events(tid, "reply_quarantined") == []
        _overdue(desk, tid)
        assert fire_due_timers(desk.app) == 1   # the warning; the close it moves gives a whole day yet
        assert len(desk.events(tid, "waiting_reminder")) == 1
    finally:
        desk_gen.close()


def test_a_reply_quarantined_before_the_wait_began_holds_nothing(make_app, db_url):
    """The wait counts from the agent's question: what came before it is no answer to it (the agent was told)."""
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        agent = desk.assign(tid)
        _quarantined(desk, CUSTOMER, _too_deep(CUSTOMER, f"Re: [#{tid}] Printer on fire"))
        desk.send(build_mail(agent, "#status waiting_customer\nWhich model is it?\n",
                             to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] Printer"))
        _overdue(desk, tid)
        assert fire_due_timers(desk.app) >= 1
        assert len(desk.events(tid, "waiting_reminder")) == 1
    finally:
        desk_gen.close()


def test_a_retried_quarantined_reply_is_the_answer_that_opens_the_ticket(make_app, db_url, tmp_path):
    desk_gen = open_desk(make_app, db_url, rules=rules(respond="1d", warn="3d", close="4d"), extra=LIMITS)
    desk = next(desk_gen)
    try:
        tid, _ = _waiting(desk)
        raw_id = _quarantined(desk, CUSTOMER, _too_deep(CUSTOMER, f"Re: [#{tid}] Printer on fire"))
        _overdue(desk, tid)
        assert fire_due_timers(desk.app) == 0
        config = tmp_path / "ticketd.yaml"
        config.write_text(config.read_text().replace("max_mime_depth: 3", "max_mime_depth: 20"))
        said = cli_ok(config, "quarantine", "retry", str(raw_id))
        assert said == f"mail {raw_id} processed: ticket {tid} (subject_tag)\n"
        assert desk.ticket(tid)["status"] == "open"
        assert "LaserJet" in desk.messages(tid)[-1]["text"]
        assert fire_due_timers(desk.app) == 0
        assert desk.events(tid, "auto_closed") == [] and desk.events(tid, "waiting_reminder") == []
    finally:
        desk_gen.close()
