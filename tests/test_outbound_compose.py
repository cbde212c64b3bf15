"""The outbound wire format: our quick header lines are the bytes compat32 would write, and they stay valid."""

from __future__ import annotations

import email
import email.policy
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.parse import parse_mail
from outbound.attachments import Listed
from outbound.outbox import SMTP_COMPAT, _text_part, as_wire_bytes, compose
from ticketd.clock import utcnow
from ticketd.domain.notices import Notice

STDLIB_WIRE = compat32.clone(linesep="\r\n")
TICKET = dict(id=42, subject="Printer on fire", status="open", priority="normal", requester="cust@example.org",
              requester_name="Customer", assignee="alice@example.com", postponed_until=None, dev_due=None)
HEADER_NAMES = ["To", "Subject", "From", "Message-ID", "References", "X-Ticketd-Ticket"]


@given(st.sampled_from(HEADER_NAMES),
       st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=120))
def test_a_header_line_is_what_compat32_writes(name, value):
    assert _fold(SMTP_COMPAT, name, value) == _fold(STDLIB_WIRE, name, value)


def _fold(policy, name, value):
    try:
        return policy.fold_binary(name, value)
    except Exception as exc:  # e.g. a value that would smuggle in a header: refused alike
        return type(exc)


def _notices():
    long_name = "Zoë Ångström-Øresund " * 4
    yield Notice("requester/ticket_opened", "cust@example.org", 42), TICKET, []
    yield (Notice("requester/agent_reply", "cust@example.org", 42, auto_submitted=None, from_name=long_name,
                  in_reply_to="abc@example.org",
                  context={"text": "Grüße " * 400 + "\rlone CR\r\nCRLF\nLF", "agent_name": long_name}),
           dict(TICKET, subject="Drucker brennt – schon wieder, bitte dringend ansehen " * 3),
           [f"{i:040d}@tickets.example.com" for i in range(12)])
    yield (Notice("agent/ticket_assigned", "alice@example.com", 42, agent_reply_to="alice@example.com"),
           dict(TICKET, subject="lorem ipsum " * 30), ["only@example.org"])
    yield Notice("agent/delivery_failed", "alice@example.com", 42,
                 context={"failed_recipient": "c@example.org", "failed_template": "requester/agent_reply",
                          "reason": "550 5.1.1 no such user"}), TICKET, []


def test_composed_mail_is_byte_for_byte_the_stdlib_output_and_parses_back(make_app, sqlite_url):
    app = make_app(sqlite_url)
    now = utcnow()
    files = [Listed("Grüße.pdf", 10, "application/pdf", "a" * 64, True),
             Listed("b.png", 5, "image/png", "b" * 64, True)]
    for index, (notice, ticket, references) in enumerate(_notices()):
        msg = compose(app, notice, ticket, references, f"m{index}@example.com", now, files if index % 2 else ())
        raw = as_wire_bytes(msg)
        assert raw == msg.as_bytes(policy=STDLIB_WIRE)
        assert [line for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if len(line) > 78] == []
        assert b"\n" not in raw.replace(b"\r\n", b"")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Message-ID"] == f"<m{index}@example.com>"
        assert not parsed.defects
        plain = parsed.get_body(("plain",)).get_content()
        assert plain.strip()
        if ticket and notice.template == "requester/agent_reply":
            assert parsed["Subject"].startswith("[#42] Drucker brennt")
            assert parsed["References"].split() == [f"<{r}>" for r in references]
            assert "Grüße " * 3 in plain
            sent = parse_mail(raw)
            assert (sent.from_name, sent.from_addr) == (" ".join(notice.from_name.split()), "support@example.com")
            assert parsed.get_body(("html",)) is not None


def test_the_boundary_is_fixed_by_the_message_id(make_app, sqlite_url):
    app = make_app(sqlite_url)
    now = utcnow()
    notice = Notice("requester/ticket_opened", "cust@example.org", 42)
    first = as_wire_bytes(compose(app, notice, TICKET, [], "same@example.com", now))
    again = as_wire_bytes(compose(app, notice, TICKET, [], "same@example.com", now))
    other = as_wire_bytes(compose(app, notice, TICKET, [], "other@example.com", now))
    assert first == again
    boundary = email.message_from_bytes(first).get_boundary()
    assert boundary.startswith("=_") and boundary != email.message_from_bytes(other).get_boundary()
    assert first.count(b"--" + boundary.encode()) == 3  # two parts and the close


_TEXT = st.text(alphabet=st.sampled_from(list("ab =.-\t\r\n\x0b\x0c\x1c\x85\u2028äß€😀"))
                | st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=500)
@given(_TEXT)
def test_a_text_part_is_7bit_quoted_printable_that_decodes_to_the_text(text):
    raw = _text_part(text, "plain").as_bytes(policy=SMTP_COMPAT)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 76
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in raw)
    part = email.message_from_bytes(raw)
    assert (part.get_content_type(), part.get_content_charset(), part["Content-Transfer-Encoding"]) == (
        "text/plain", "utf-8", "quoted-printable")
    # SMTP carries lines: a bare CR or LF arrives as a line break (CRLF).
    decoded = part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
    assert decoded == text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- customer text that cannot be folded


def _longest_line(raw: bytes) -> int:
    return max(len(line) for line in raw.split(b"\r\n"))


def test_an_unbroken_long_subject_and_message_id_keep_every_line_within_the_limit(make_app, sqlite_url):
    """RFC 5322 2.1.1: 998 characters at most. Smarthosts refuse longer lines, and the customer's
    subject and first Message-ID recur in every mail of the ticket."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, sqlite_url)
    desk = next(desk_gen)
    try:
        url = "https://example.org/" + "x" * 1180
        msg = build_mail("cust@example.org", "See the subject.\n", subject=url)
        del msg["Message-ID"]
        msg["Message-ID"] = "<" + "a" * 1100 + "@client.example.org>"
        desk.send(msg)
        tid = desk.ticket()["id"]
        desk.assign(tid)
        rows = desk.rows(ticket_id=tid)
        assert {r["template"] for r in rows} == {"requester/ticket_opened", "agent/ticket_assigned"}
        for row in rows:
            raw = bytes(row["raw"])
            assert _longest_line(raw) <= 78, row["template"]
            sent = email.message_from_bytes(raw, policy=email.policy.default)
            # The ticket keeps the subject's first 250 characters (ticketd.domain.tags.shortened): still one
            # word far over a line's length.
            subject = str(sent["Subject"])
            assert subject.startswith(f"[#{tid}] ") and subject.endswith(f" {url[:249]}…")
            assert "a" * 1100 not in raw.decode("ascii")   # left out, not folded into an invalid header
        assert {r["state"] for r in desk.rows(ticket_id=tid)} == {"sent"}
    finally:
        desk_gen.close()


def test_a_relayed_agent_reply_threads_on_the_customers_mail_not_the_agents(make_app, sqlite_url):
    """The customer never got the agent's own mail, and its Message-ID names the agent's host."""
    from tests.desk import build_mail, open_desk

    desk_gen = open_desk(make_app, sqlite_url)
    desk = next(desk_gen)
    try:
        first = desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        agent = desk.assign(tid)
        answer = build_mail(agent, "Unplug it.\n", to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] x")
        del answer["Message-ID"]
        answer["Message-ID"] = "<1.alice@laptop.corp-internal.example.net>"
        desk.send(answer)
        relayed = desk.last("cust@example.org")
        assert relayed["In-Reply-To"] == first["Message-ID"]
        assert "corp-internal" not in str(relayed["References"]) and "corp-internal" not in str(relayed)
        desk.reply_to(relayed, "cust@example.org", "Done, thanks.\n")
        desk.send(build_mail(agent, "Good.\n", to=desk.agent_address(tid, agent), subject=f"Re: [#{tid}] x"))
        assert "corp-internal" not in str(desk.last("cust@example.org"))
    finally:
        desk_gen.close()
