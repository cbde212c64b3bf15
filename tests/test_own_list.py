"""Support is a Google Group (or a mailing list) itself: its customers are answered, DMARC-rewritten From or not."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.conftest import write_config
from ticketd.cli import main
from ticketd.pipeline import drain
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events, messages, outbox, participants, tickets

# What Google Groups adds to every mail its group support@example.com passes on.
GROUP_FIELDS = (b"List-Id: <support.example.com>\r\nPrecedence: list\r\n"
                b"Mailing-list: list support@example.com; contact support+owners@example.com\r\n"
                b"List-Post: <https://groups.google.com/a/example.com/group/support/post>, "
                b"<mailto:support@example.com>\r\n"
                b"List-Unsubscribe: <mailto:googlegroups-manage+1234+unsubscribe@googlegroups.com>\r\n")
BODY = b"Content-Type: text/plain\r\n\r\nThe export button does nothing since Monday.\r\n"


def _mail(from_field: bytes, extra: bytes = b"", list_fields: bytes = GROUP_FIELDS,
          message_id: bytes = b"<export@yahoo.com>") -> bytes:
    return (b"From: " + from_field + b"\r\nTo: support@example.com\r\nCc: Erik <erik@example.org>\r\n"
            b"Subject: export broken\r\nDate: Tue, 02 Jan 2024 10:00:00 +0100\r\nMessage-ID: " + message_id
            + b"\r\n" + extra + list_fields + BODY)


def _deliver(app, raw: bytes) -> None:
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
    drain(app)


def _ticket(app) -> dict:
    with app.engine.connect() as conn:
        ticket = conn.execute(select(tickets.c.requester, tickets.c.requester_name)).one()
        return dict(
            requester=tuple(ticket),
            acks=conn.execute(select(outbox.c.recipient).where(outbox.c.template == "requester/ticket_opened")
                              ).scalars().all(),
            people=dict(conn.execute(select(participants.c.email, participants.c.role)).all()),
            from_=conn.execute(select(messages.c.from_addr, messages.c.from_name)).all(),
            not_answered=conn.execute(select(events.c.reason).where(events.c.kind == "not_answered")).scalars().all(),
        )


@pytest.mark.parametrize("from_field, extra", [
    (b"Dana <dana@yahoo.com>", b""),   # the group passes it on as written
    # DMARC p=reject at the writer's domain: Google writes itself into From, keeps the writer twice.
    (b"\"'Dana' via Support\" <support@example.com>",
     b"X-Original-From: Dana <dana@yahoo.com>\r\nReply-To: Dana <dana@yahoo.com>\r\n"),
    # Mailman's munge_from: the writer in Reply-To only, without a name there.
    (b"Dana via Support <support@example.com>", b"Reply-To: dana@yahoo.com\r\n"),
], ids=["as written", "google rewrote From", "mailman rewrote From"])
def test_a_customer_writing_to_a_support_group_is_acknowledged_and_their_cc_follow(
        from_field, extra, make_app, sqlite_url):
    app = make_app(sqlite_url)
    _deliver(app, _mail(from_field, extra))
    ticket = _ticket(app)
    assert ticket["requester"] == ("dana@yahoo.com", "Dana")
    assert ticket["acks"] == ["dana@yahoo.com"]
    assert ticket["people"] == {"dana@yahoo.com": "requester", "erik@example.org": "follower"}
    assert ticket["from_"] == [("dana@yahoo.com", "Dana")]
    assert ticket["not_answered"] == []


@pytest.mark.parametrize("list_fields", [
    GROUP_FIELDS.replace(b"support.example.com", b"users.example.com").replace(b"mailto:support@", b"mailto:users@"),
    b"List-Id: <support.lists.example.net>\r\nPrecedence: list\r\n",   # another domain's "support" list
], ids=["another group", "another domain"])
def test_a_list_that_is_not_our_address_still_answers_no_one(list_fields, make_app, sqlite_url):
    """A list of others relays to its readers: an acknowledgement would go to all of them."""
    app = make_app(sqlite_url)
    _deliver(app, _mail(b"Dana <dana@yahoo.com>", list_fields=list_fields))
    ticket = _ticket(app)
    assert ticket["acks"] == [] and list(ticket["people"]) == ["dana@yahoo.com"]
    assert ticket["not_answered"] == ["sent through a mailing list (List-Id or Precedence: list)"]


def test_a_from_of_ours_via_a_list_of_others_is_not_taken_for_its_writer(make_app, sqlite_url):
    """Only our own list's rewriting is undone: anyone may write "via" and an X-Original-From."""
    app = make_app(sqlite_url)
    _deliver(app, _mail(b"Dana via Support <support@example.com>", b"X-Original-From: dana@yahoo.com\r\n",
                        list_fields=b""))
    assert _ticket(app)["from_"] == [("support@example.com", "Dana via Support")]


def test_rules_test_reads_the_group_relayed_mail_as_the_daemon_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/none.db")
    mail = tmp_path / "group.eml"
    mail.write_bytes(_mail(b"\"'Dana' via Support\" <support@example.com>",
                           b"X-Original-From: Dana <dana@yahoo.com>\r\n"))
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "rules.yaml"), str(mail),
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "mail: requester/ticket_opened to dana@yahoo.com" in result.output.splitlines(), result.output
    assert "not answered" not in result.output


def test_a_hostile_list_post_is_read_in_linear_time():
    """At each "<mailto:" the old pattern tried every split of its two overlapping runs: 100 kB took 11 s."""
    import time

    from ticketd.domain.own_list import is_own_list

    for value in ("<mailto:" * 12_000, ("<mailto:" + "a" * 300 + " " * 2_000) * 40):
        started = time.perf_counter()
        assert not is_own_list({"list-post": value}, ["support@example.com"], lambda a: a == "support@example.com")
        assert time.perf_counter() - started < 1
