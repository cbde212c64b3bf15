"""Through the running daemon: a hostile customer's tricks on who counts as an agent, and the ones that must fail.

PRODUCT.md, "Agents by email": a mail is the agent's only when it came through that agent's own signed
reply address and From is that agent; any other mail is an ordinary customer's, its commands text. Each
attack here goes through a real `ticketd run` (smtplib in, an aiosmtpd sink as smarthost) to the real
reply address Alice's notice carried, with `#priority high` on top: applied, it would show on the ticket.
"""

from __future__ import annotations

import itertools
import smtplib
import sqlite3
import time
from email.message import EmailMessage

import pytest

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import Sink, customer_mail, wait_until

CUSTOMER, ALICE, BOB = "cust@example.org", "alice@example.com", "bob@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [other]}
groups:
  support: {assign: round_robin}
  other: {assign: round_robin}
routes:
  - then: {group: support}
"""
_numbers = itertools.count(1)


class Running:
    """A `ticketd run` on SQLite with its sink; tickets opened by a customer and given to Alice."""

    def __init__(self, root, extra: str = "", secret: str = "test-secret") -> None:
        self.root, self.db = root, root / "desk.db"
        self.sink = Sink(free_port()).start()
        self.port = free_port()
        self.config = write_config(root, f"sqlite:///{self.db}", rules=RULES, smtp_port=self.port,
                                   outbound_port=self.sink.port, extra=f"secret_key: {secret}\n" + extra)
        self.process = DaemonProcess(self.config).start()

    def stop(self) -> None:
        self.process.stop()
        self.sink.stop()

    def restart(self, extra: str, secret: str) -> None:
        """The same desk started again with other settings (a rotated key)."""
        self.process.stop()
        self.config = write_config(self.root, f"sqlite:///{self.db}", rules=RULES, smtp_port=self.port,
                                   outbound_port=self.sink.port, extra=f"secret_key: {secret}\n" + extra)
        self.process = DaemonProcess(self.config).start()

    def send(self, msg: EmailMessage | bytes, to: list[str] | None = None) -> None:
        """Through our receiver; bytes go as they are, to `to` (the envelope: RCPT TO)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            if isinstance(msg, bytes):
                assert client.sendmail("sender@client.example.org", to, msg) == {}
            else:
                assert client.send_message(msg, to_addrs=to) == {}

    def query(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()

    def notices(self, recipient: str, subject: str) -> list[EmailMessage]:
        return [m.message for m in self.sink.messages
                if recipient in m.rcpt_tos and subject in str(m.message["Subject"])]

    def open_ticket(self) -> tuple[int, EmailMessage]:
        """A new ticket of the customer's, given to Alice: its number and Alice's notice of it."""
        subject = f"Printer {next(_numbers)} on fire"
        self.send(customer_mail(subject=subject))
        [notice] = wait_until(lambda: self.notices(ALICE, subject), timeout=20)
        tid = int(str(notice["Subject"]).split("[#", 1)[1].split("]", 1)[0])
        return tid, notice

    def outcome(self, msg: bytes) -> tuple[str, str, str]:
        """(the ticket's priority, the stored message's author role, the kinds of events it caused) once processed."""
        message_id = message_id_of(msg)
        wait_until(lambda: self.query("SELECT 1 FROM raw_mail WHERE message_id = ? AND state = 'done'", message_id),
                   timeout=20)
        [(ticket_id, role, row_id)] = self.query("SELECT ticket_id, author_role, id FROM messages WHERE message_id = ?",
                                                 message_id)
        [(priority,)] = self.query("SELECT priority FROM tickets WHERE id = ?", ticket_id)
        kinds = " ".join(k for (k,) in self.query("SELECT kind FROM events WHERE message_id = ?", row_id))
        return priority, role, kinds


def message_id_of(raw: bytes) -> str:
    return raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()


def mail(from_header: str | list[str] | None, to: str, body: str = "#priority high\nPlease look at it first.\n",
         subject: str = "Re: printer", **headers) -> bytes:
    """A reply's bytes as whoever sends it writes them: each From given written as it is (none, or several)."""
    froms = [from_header] if isinstance(from_header, str) else (from_header or [])
    lines = [f"From: {value}" for value in froms] + [
        f"To: {to}", f"Subject: {subject}", f"Message-ID: <hostile-{time.monotonic_ns()}@client.example.org>",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    running = Running(tmp_path_factory.mktemp("hostile"))
    yield running
    running.stop()


# ---------------------------------------------------------------- From tricks: none is Alice's mail

NOT_ALICE = {
    "two addresses, Sender Alice": dict(From=f"Alice <{ALICE}>, Eve <eve@evil.example>", Sender=ALICE),
    "two From fields": dict(From=[ALICE, "eve@evil.example"]),
    "her address as display name": dict(From=f'"{ALICE}" <eve@evil.example>'),
    "her address bare before another": dict(From=f"{ALICE} <eve@evil.example>"),
    "her address encoded in the name": dict(From="=?utf-8?q?alice=40example=2Ecom?= <eve@evil.example>"),
    "encoded name and address before another": dict(
        From="=?utf-8?q?Alice_=3Calice=40example=2Ecom=3E?= <eve@evil.example>"),
    "her address in a comment": dict(From=f"eve@evil.example ({ALICE})"),
    "route through her domain": dict(From="Alice <@example.com:eve@evil.example>"),
    "Cyrillic i": dict(From="Alice <al\u0456ce@example.com>"),
    "full-width e": dict(From="Alice <alice@\uff45xample.com>"),
    "quoted local part holding her address": dict(From=f'"{ALICE}"@evil.example'),
    "percent hack": dict(From="alice%example.com@evil.example"),
    "Sender Alice, From another": dict(From="eve@evil.example", Sender=ALICE),
    "Resent-From Alice": dict(From="eve@evil.example", Resent_From=ALICE, Resent_Sender=ALICE),
    "Reply-To Alice": dict(From="eve@evil.example", Reply_To=ALICE),
    "no From, Sender Alice": dict(From=None, Sender=ALICE),
}


@pytest.mark.parametrize("headers", list(NOT_ALICE.values()), ids=list(NOT_ALICE))
def test_a_from_that_is_not_alice_through_her_reply_address_is_customer_mail(desk, headers):
    tid, notice = desk.open_ticket()
    headers = dict(headers)
    address = str(notice["Reply-To"])
    msg = mail(headers.pop("From"), address, **headers)
    desk.send(msg, to=[address])
    priority, role, kinds = desk.outcome(msg)
    assert (priority, role) == ("normal", "customer"), kinds
    assert "agent_replied" not in kinds and "agent_commands" not in kinds


SPELLED_ALICE = {
    "upper case": "ALICE@EXAMPLE.COM",
    "a comment": f"{ALICE} (Alice at work)",
    "a name and brackets": f"Alice Example <{ALICE}>",
    "a route": "Alice <@relay.example.com:alice@example.com>",
    "a domain ending in a dot": "Alice <alice@example.com.>",
    "a group (RFC 6854)": f"Support team: Alice <{ALICE}>;",
}


@pytest.mark.parametrize("from_header", list(SPELLED_ALICE.values()), ids=list(SPELLED_ALICE))
def test_alices_own_address_however_spelled_is_hers(desk, from_header):
    """Spellings RFC 5322 gives one mailbox: no trick, and the reply address decides with it."""
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    msg = mail(from_header, address)
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[:2] == ("high", "agent")


def test_a_forged_from_alice_with_her_leaked_reply_address_acts_unless_our_mta_vouches(desk):
    """Without agent_auth a reader of Alice's reply address (a customer she copied on her reply) who writes
    From Alice has her authority: that is what agent_auth is for (tests/test_agent_auth_results_edges.py)."""
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    msg = mail(f"Alice <{ALICE}>", address, Received="from evil.example by mx.evil.example")
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[:2] == ("high", "agent")


# ---------------------------------------------------------------- the signed address, where it stands


def test_her_reply_address_in_the_envelope_only_counts(desk):
    """Bcc: the envelope (RCPT TO) names the address, no header does."""
    tid, notice = desk.open_ticket()
    msg = mail(f"Alice <{ALICE}>", CUSTOMER)
    desk.send(msg, to=[str(notice["Reply-To"])])
    assert desk.outcome(msg)[:2] == ("high", "agent")


def test_her_reply_address_in_upper_case_counts(desk):
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"]).upper()
    msg = mail(f"Alice <{ALICE}>", address)
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[:2] == ("high", "agent")


def test_her_reply_address_in_delivered_to_counts(desk):
    """A copy fetched over IMAP names it in Delivered-To only (its To the plain support address)."""
    tid, notice = desk.open_ticket()
    msg = mail(f"Alice <{ALICE}>", "support@example.com", Delivered_To=str(notice["Reply-To"]))
    desk.send(msg, to=["support@example.com"])
    assert desk.outcome(msg)[:2] == ("high", "agent")


def test_a_separator_changed_on_the_way_is_no_reply_address(desk):
    """+ made - by a relay: no address of ours, so only the tag threads the mail, and it acts on nothing."""
    tid, notice = desk.open_ticket()
    dashed = str(notice["Reply-To"]).replace("support+", "support-")
    msg = mail(f"Alice <{ALICE}>", dashed, subject=f"Re: [#{tid}] printer")
    desk.send(msg, to=["support@example.com"])
    priority, role, kinds = desk.outcome(msg)
    assert (priority, role) == ("normal", "customer")


def test_alices_reply_address_with_bobs_from_is_no_ones(desk):
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    msg = mail(f"Bob <{BOB}>", address)
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[:2] == ("normal", "customer")
    [told] = wait_until(lambda: desk.notices(BOB, f"[#{tid}]"), timeout=20)
    assert "another person's reply address" in told.get_body(("plain",)).get_content()


def test_her_reply_address_of_another_ticket_acts_there_only(desk):
    """The address names its ticket; the tag of another ticket in the subject moves nothing there."""
    first, _ = desk.open_ticket()
    second, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    msg = mail(f"Alice <{ALICE}>", address, subject=f"Re: [#{first}] printer")
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[:2] == ("high", "agent")
    assert desk.query("SELECT priority FROM tickets WHERE id = ?", first) == [("normal",)]
    assert desk.query("SELECT ticket_id FROM messages WHERE message_id = ?", message_id_of(msg)) == [(second,)]


# ---------------------------------------------------------------- where her address could reach a customer


def test_her_reply_address_reaches_no_customer_by_a_reply_all_or_her_relayed_words(desk):
    """Her notice names no customer (a reply-all reaches only ticketd), and what she writes is relayed
    From the support address with the customer's own reply address, her signed one written out of it."""
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    assert [str(notice["To"])] == [ALICE] and notice["Cc"] is None
    body = f"We will fix it today.\n\nAlice\nSupport team\n{address}\n"
    msg = mail(f"Alice <{ALICE}>", address, body=body)
    desk.send(msg, to=[address])
    assert desk.outcome(msg)[1] == "agent"
    [relayed] = wait_until(lambda: [m for m in desk.notices(CUSTOMER, f"[#{tid}]")
                                    if "fix it today" in m.get_body(("plain",)).get_content()], timeout=20)
    token = address.split("+", 1)[1].split("@", 1)[0]
    assert token not in relayed.as_string().lower()
    assert str(relayed["Reply-To"]) != address and str(relayed["From"]).endswith("<support@example.com>")
