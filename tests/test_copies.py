"""A mail kept already, come again with other bytes: one message, and `quarantine retry` says so."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingest.parse import dedupe_key
from tests.cli import cli_ok
from tests.test_status_checks import DEEP
from ticketd.pipeline import drain
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events, messages, outbox, participants, raw_mail, tickets

HEAD = (b"From: Dana <dana@example.org>\r\nTo: support@example.com\r\nSubject: deep\r\n"
        b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\nMessage-ID: <deep-copy@example.org>\r\n")


def _store(app, raw: bytes) -> int:
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id).raw_id


def test_a_quarantined_copy_retried_after_the_first_was_kept_is_not_added_twice(tmp_path, make_app, sqlite_url):
    """The copy came nested deeper than max_mime_depth (quarantined); the first, flat, became the ticket.
    Retried with the limit raised, the copy says what the first said."""
    config = tmp_path / "ticketd.yaml"
    app = make_app(sqlite_url, extra="max_mime_depth: 2\n")
    nested = _store(app, HEAD + DEEP)
    drain(app)
    flat = _store(app, HEAD + b"Content-Type: text/plain\r\n\r\ndeep\r\n")
    drain(app)
    with app.engine.connect() as conn:
        assert dict(conn.execute(select(raw_mail.c.id, raw_mail.c.state)).all()) == {
            nested: "quarantined", flat: "done"}
    config.write_text(config.read_text().replace("max_mime_depth: 2\n", "max_mime_depth: 10\n"))
    said = cli_ok(config, "quarantine", "retry", str(nested))
    assert said == (f"mail {nested} processed: ticket 1 has it already (another delivery of it, its bytes "
                    f"changed on the way); not added twice\n")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 1
        assert conn.execute(select(raw_mail.c.state, raw_mail.c.ticket_id).where(raw_mail.c.id == nested)
                            ).one() == ("done", 1)


LIST_HEAD = (b"From: Dana <dana@example.org>\r\nTo: support@example.com, users@lists.example.org\r\n"
             b"Subject: printer jams\r\nDate: Tue, 02 Jan 2024 10:00:00 +0100\r\n"
             b"Message-ID: <jam@example.org>\r\nContent-Type: text/plain\r\n")
WORDS = b"The printer jams every morning since the update.\r\n"
MAILMAN_FOOTER = (b"_______________________________________________\r\n"
                  b"users mailing list -- users@lists.example.org\r\n"
                  b"To unsubscribe send an email to users-leave@lists.example.org\r\n")


def _through_list(body: bytes, head: bytes = LIST_HEAD) -> bytes:
    # What Mailman 3 makes of it: its subject prefix, its List-Id, its footer after the words.
    return (head.replace(b"Subject: ", b"Subject: [users] ")
            + b"List-Id: <users.lists.example.org>\r\nPrecedence: list\r\n\r\n" + body + MAILMAN_FOOTER)


def _messages(app) -> list[tuple[int, str]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(messages.c.ticket_id, messages.c.full_text))]


def _states(app) -> list[str]:
    with app.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(raw_mail.c.state).order_by(raw_mail.c.id))]


def _two_deliveries(app, first: bytes, second: bytes) -> None:
    _store(app, first)
    drain(app)
    _store(app, second)
    drain(app)


@pytest.mark.parametrize("list_copy_first", [False, True])
def test_a_copy_a_mailing_list_relayed_with_its_footer_is_the_mail_kept_already(
        list_copy_first, make_app, sqlite_url):
    """The customer wrote to support and to a list support is on: one message, whichever came first."""
    mails = [LIST_HEAD + b"\r\n" + WORDS, _through_list(WORDS)]
    app = make_app(sqlite_url)
    _two_deliveries(app, *(reversed(mails) if list_copy_first else mails))
    kept = _messages(app)
    assert len(kept) == 1 and kept[0][1].startswith("The printer jams every morning")
    assert _states(app) == ["done", "done"]


@pytest.mark.parametrize("list_copy_first", [False, True])
def test_the_customer_is_acknowledged_once_and_their_cc_follow_whichever_copy_came_first(
        list_copy_first, make_app, sqlite_url):
    """The list's copy is robot mail (List-Id): opening the ticket it answers no one and brings in no Cc.
    The customer's own copy after it is no robot's: the acknowledgement and the followers come then."""
    head = LIST_HEAD.replace(b"Content-Type", b"Cc: Erik <erik@example.org>\r\nContent-Type")
    mails = [head + b"\r\n" + WORDS, _through_list(WORDS, head)]
    app = make_app(sqlite_url)
    _two_deliveries(app, *(reversed(mails) if list_copy_first else mails))
    with app.engine.connect() as conn:
        acks = conn.execute(select(outbox.c.recipient, outbox.c.ticket_id)
                            .where(outbox.c.template == "requester/ticket_opened")).all()
        people = dict(conn.execute(select(participants.c.email, participants.c.role)).all())
        kinds = [r[0] for r in conn.execute(select(events.c.kind).order_by(events.c.id))]
    assert acks == [("dana@example.org", 1)]
    assert people == {"dana@example.org": "requester", "erik@example.org": "follower"}
    assert ("answerable" in kinds) == list_copy_first
    assert len(_messages(app)) == 1


def test_the_late_acknowledgement_threads_under_the_customers_mail_and_the_list_in_cc_follows_nothing(
        make_app, sqlite_url):
    """The opening message stayed robot mail, so the acknowledgement lost its In-Reply-To; and the list the
    customer copied would have heard every public reply."""
    head = LIST_HEAD.replace(b"To: support@example.com, users@lists.example.org",
                             b"To: support@example.com\r\nCc: users@lists.example.org, Erik <erik@example.org>")
    app = make_app(sqlite_url)
    _two_deliveries(app, _through_list(WORDS, head), head + b"\r\n" + WORDS)
    with app.engine.connect() as conn:
        (raw,) = conn.execute(select(outbox.c.raw).where(outbox.c.template == "requester/ticket_opened")).scalars()
        people = dict(conn.execute(select(participants.c.email, participants.c.role)).all())
        robot = conn.execute(select(messages.c.auto_generated)).scalar_one()
    assert b"In-Reply-To: <jam@example.org>" in bytes(raw)
    assert people == {"dana@example.org": "requester", "erik@example.org": "follower"}
    assert robot is False


def test_the_own_copy_after_an_agent_answered_sends_no_late_acknowledgement(make_app, sqlite_url):
    """Only a ticket still `new` is acknowledged late: once it moved on, the customer has heard from us."""
    app = make_app(sqlite_url)
    _store(app, _through_list(WORDS))
    drain(app)
    with app.engine.begin() as conn:
        conn.execute(tickets.update().values(status="open"))
    _store(app, LIST_HEAD + b"\r\n" + WORDS)
    drain(app)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.template == "requester/ticket_opened")).scalar_one() == 0
    assert _states(app) == ["done", "done"]


LONG_TAIL = b" ".join(b"word%d" % i for i in range(200)) + b"\r\n"


@pytest.mark.parametrize("second", [_through_list(WORDS + LONG_TAIL), LIST_HEAD + b"\r\n" + WORDS + MAILMAN_FOOTER],
                         ids=["more than a footer", "no list"])
def test_more_than_a_footer_after_the_words_or_words_without_a_list_are_another_mail(
        second, make_app, sqlite_url):
    """Only the copy a list relayed may say more, and only a footer's length more."""
    app = make_app(sqlite_url)
    _two_deliveries(app, LIST_HEAD + b"\r\n" + WORDS, second)
    assert len(_messages(app)) == 2
    assert _states(app) == ["done", "done"]
