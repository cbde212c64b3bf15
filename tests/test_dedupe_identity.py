"""Two different mails with one dedupe key are both kept; one mail delivered twice is stored once."""

from __future__ import annotations

import logging
import smtplib

import pytest
from sqlalchemy import func, select

from ingest.identity import candidate_keys, head_of, identity, same_mail
from ingest.parse import dedupe_key
from ticketd.pipeline import drain
from ticketd.store.inbox import RawMail, store_raw, store_raw_batch
from ticketd.store.tables import raw_mail, tickets

MID = "<reused-1@broken-client.example.org>"
DATE = "Tue, 05 Mar 2024 09:15:00 +0100"


def _mail(sender="Ann <ann@example.org>", date: str | None = DATE, body="Thanks\n", trace=(), extra=(),
          subject="Re: your question", eol="\r\n") -> bytes:
    """A mail as it reaches us, Message-ID MID, with `trace` fields on top as a relay adds them."""
    lines = [*trace, f"From: {sender}", "To: support@example.com", f"Subject: {subject}", f"Message-ID: {MID}"]
    if date is not None:
        lines.append(f"Date: {date}")
    lines.extend(extra)
    return (eol.join(lines) + eol + eol + body.replace("\n", eol)).encode()


def _same(a: bytes, b: bytes) -> bool:
    return same_mail(identity(a), identity(b))


VIA_SMTP = ("Received: from mail.example.org by mx.example.com; Tue, 5 Mar 2024 08:15:02 +0000",
            "Return-Path: <ann@example.org>", "Authentication-Results: mx.example.com; dkim=pass")
VIA_IMAP = ("Delivered-To: support@example.com", "Received: from mx.example.com by imap.example.com",
            "Received: from mail.example.org by mx.example.com; Tue, 5 Mar 2024 08:15:09 +0000",
            "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.com", "Received-SPF: pass",
            "X-Spam-Score: 0.1")


# ---------------------------------------------------------------- the decision, pure


def test_one_mail_by_two_routes_is_the_same_mail():
    assert _same(_mail(trace=VIA_SMTP), _mail(trace=VIA_IMAP))


def test_line_ends_and_refolded_headers_do_not_matter():
    folded = _mail(sender='"Ann\r\n Example" <ann@example.org>', date="Tue, 05 Mar 2024\r\n 09:15:00 +0100")
    assert _same(_mail(eol="\r\n"), _mail(eol="\n"))
    assert _same(_mail(), folded)


def test_a_date_respelled_by_a_relay_is_the_same_instant():
    assert _same(_mail(date="Tue, 05 Mar 2024 09:15:00 +0100"), _mail(date="5 Mar 2024 08:15:00 GMT"))
    assert _same(_mail(date="Tue, 05 Mar 2024 09:15:00 +0100 (CET)"), _mail(date="Tue, 5 Mar 2024 09:15 +0100"))


def test_a_different_date_is_a_different_mail():
    assert not _same(_mail(), _mail(date="Tue, 05 Mar 2024 09:16:00 +0100"))


def test_an_unparseable_date_is_compared_as_written():
    assert _same(_mail(date="yesterday  at\r\n noon"), _mail(date="yesterday at noon"))
    assert not _same(_mail(date="yesterday at noon"), _mail(date="today at noon"))


def test_a_different_from_is_a_different_mail():
    assert not _same(_mail(), _mail(sender="Bob <bob@example.net>"))
    assert _same(_mail(sender="Ann <ANN@Example.org>"), _mail(sender="ann@example.org"))


def test_a_list_copy_with_from_rewritten_for_dmarc_is_the_same_mail():
    listed = _mail(sender='"Ann via Users" <users@lists.example.net>', subject="[users] Re: your question",
                   extra=("Reply-To: Ann <ann@example.org>", "List-Id: <users.lists.example.net>"),
                   trace=("Received: from lists.example.net by mx.example.com",))
    cc = _mail(sender="users@lists.example.net", extra=("Cc: ann@example.org",))
    original = _mail(sender="users@lists.example.net", extra=("X-Original-From: Ann <ann@example.org>",))
    for copy in (listed, cc, original):
        assert _same(_mail(trace=VIA_SMTP), copy) and _same(copy, _mail(trace=VIA_IMAP))


def test_a_reply_to_naming_someone_else_does_not_make_two_authors_one():
    assert not _same(_mail(), _mail(sender="bob@example.net", extra=("Reply-To: carol@example.net",)))


def test_without_a_date_on_either_the_from_decides():
    assert _same(_mail(date=None), _mail(date=None, trace=VIA_IMAP))
    assert not _same(_mail(date=None), _mail(date=None, sender="bob@example.net"))
    # An MTA may add a missing Date (RFC 5321 section 6.4): one side only.
    assert _same(_mail(date=None), _mail())
    assert not _same(_mail(date=None), _mail(sender="bob@example.net"))


def test_no_from_is_never_the_same_author_as_a_from():
    assert not _same(_mail(sender=""), _mail(date=None))


def _bare(extra=()) -> bytes:
    """A script's mail: no From, Date or Message-ID, so its dedupe key is its headers' and body's hash."""
    return ("\r\n".join(["To: support@example.com", "Subject: printer broken", *extra]) + "\r\n\r\n"
            "The printer is broken.\r\n").encode()


def test_without_a_from_who_sent_it_tells_two_mails_apart():
    """Alike in every header, two people's mails were one: the second customer's was lost."""
    assert not same_mail(identity(_bare(), "alpha@example.org"), identity(_bare(), "beta@example.net"))
    assert same_mail(identity(_bare(), "alpha@example.org"), identity(_bare(), "Alpha@Example.org"))
    # The IMAP route's copy carries the envelope as Return-Path: the same mail as the SMTP route's.
    assert same_mail(identity(_bare(), "alpha@example.org"), identity(_bare(["Return-Path: <alpha@example.org>"])))
    assert not same_mail(identity(_bare(["Return-Path: <rp1@example.org>"])),
                         identity(_bare(["Return-Path: <rp2@example.net>"])))
    assert not same_mail(identity(_bare(["Sender: a@example.org"])), identity(_bare(["Sender: b@example.org"])))


def test_the_head_ends_at_the_first_blank_line():
    raw = _mail(body="Date: Wed, 06 Mar 2024 10:00:00 +0000\nFrom: mallory@example.net\n")
    assert head_of(raw).endswith(f"Date: {DATE}".encode())
    assert identity(raw) == identity(_mail(body="something else\n"))
    assert head_of(b"\r\nFrom: not-a-header@example.org\r\n") == b""


def test_candidate_keys_fit_the_column_and_tell_different_mails_apart():
    key, _ = dedupe_key(_mail())
    ann, bob, later = (candidate_keys(key, identity(m)) for m in
                       (_mail(), _mail(sender="bob@example.net"), _mail(date="Wed, 06 Mar 2024 09:15:00 +0100")))
    assert ann[0] == bob[0] == later[0] == key
    assert ann[1] == bob[1] != later[1]
    assert len({ann[2], bob[2], later[2]}) == 3
    assert all(len(k) <= 128 for k in ann + candidate_keys("k" * 128, identity(_mail())))
    assert candidate_keys(key, identity(_mail(trace=VIA_IMAP, eol="\n"))) == ann


# ---------------------------------------------------------------- the store, on both databases


def _rawmail(raw: bytes) -> RawMail:
    return RawMail(raw, "smtp", *dedupe_key(raw), "x@example.org", ["support@example.com"])


def _raw_rows(app) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(raw_mail)).scalar_one()


def test_group_commit_keeps_different_mails_of_one_key_in_one_batch(make_app, db_url):
    app = make_app(db_url)
    ann, bob = _mail(), _mail(sender="Bob <bob@example.net>")
    ann_again = _mail(trace=VIA_IMAP, eol="\n")
    stored = store_raw_batch(app.engine, [_rawmail(m) for m in (ann, bob, ann_again, bob)])
    assert [(s.duplicate, s.derived) for s in stored] == [(False, False), (False, True), (True, False),
                                                          (True, False)]
    assert stored[2].raw_id == stored[0].raw_id and stored[3].raw_id == stored[1].raw_id
    assert _raw_rows(app) == 2


def test_a_third_mail_and_redeliveries_under_derived_keys(make_app, db_url):
    """The single-mail path (IMAP, and the batch's fallback when another writer races it)."""
    app = make_app(db_url)
    mails = {"ann": _mail(), "bob": _mail(sender="bob@example.net"),
             "later": _mail(date="Wed, 06 Mar 2024 09:15:00 +0100"),
             "later-bob": _mail(date="Wed, 06 Mar 2024 09:15:00 +0100", sender="bob@example.net")}
    ids = {}
    for name, raw in mails.items():
        stored = store_raw(app.engine, raw, source="imap", dedupe_key=dedupe_key(raw)[0], message_id=MID)
        assert not stored.duplicate and stored.derived == (name != "ann")
        ids[name] = stored.raw_id
    for name, raw in mails.items():
        again = raw.replace(b"\r\n", b"\n").replace(b"From:", b"Received: from relay.example.net\nFrom:", 1)
        stored = store_raw(app.engine, again, source="imap", dedupe_key=dedupe_key(again)[0], message_id=MID)
        assert (stored.raw_id, stored.duplicate, stored.derived) == (ids[name], True, False), name
    listed = _mail(date="Wed, 06 Mar 2024 09:15:00 +0100", sender="users@lists.example.net",
                   extra=("Reply-To: ann@example.org",))
    stored = store_raw_batch(app.engine, [_rawmail(listed)])[0]
    assert (stored.raw_id, stored.duplicate) == (ids["later"], True)
    assert _raw_rows(app) == 4
    with app.engine.connect() as conn:
        keys = dict(conn.execute(select(raw_mail.c.id, raw_mail.c.dedupe_key)).all())
    assert keys[ids["ann"]] == dedupe_key(mails["ann"])[0]
    assert len(set(keys.values())) == 4 and all(k.startswith(keys[ids["ann"]][:60]) for k in keys.values())


# ---------------------------------------------------------------- through the SMTP receiver


def _send(port: int, raw: bytes, sender: str) -> str:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt("support@example.com")
        code, reply = client.data(raw)
    assert code == 250
    return reply.decode()


def test_two_customers_thanking_with_one_message_id_get_two_tickets(receiver_app, caplog):
    app, receiver = receiver_app
    ann, bob = _mail(trace=VIA_SMTP), _mail(sender="Bob <bob@example.net>", trace=VIA_SMTP)
    with caplog.at_level(logging.INFO, logger="ticketd.smtp"):
        assert "queued as" in _send(receiver.port, ann, "ann@example.org")
        assert "queued as" in _send(receiver.port, bob, "bob@example.net")
    assert "kept as a new mail" in caplog.text
    assert drain(app) == 2
    with app.engine.connect() as conn:
        requesters = sorted(conn.execute(select(tickets.c.requester)).scalars())
    assert requesters == ["ann@example.org", "bob@example.net"]

    bob_again = _mail(sender="Bob <bob@example.net>", trace=VIA_IMAP)
    assert "already have it" in _send(receiver.port, bob_again, "bob@example.net")
    assert "already have it" in _send(receiver.port, ann, "ann@example.org")
    assert _raw_rows(app) == 2
    assert drain(app) == 0


def test_two_people_sending_the_same_mail_without_a_from_get_two_tickets(receiver_app):
    app, receiver = receiver_app
    assert "queued as" in _send(receiver.port, _bare(), "alpha@example.org")
    assert "queued as" in _send(receiver.port, _bare(), "beta@example.net")   # was "already have it"
    assert "already have it" in _send(receiver.port, _bare(), "alpha@example.org")   # a retry stays one
    assert _raw_rows(app) == 2
    assert drain(app) == 2
    with app.engine.connect() as conn:
        requesters = sorted(conn.execute(select(tickets.c.requester)).scalars())
    assert requesters == ["alpha@example.org", "beta@example.net"]


@pytest.mark.parametrize("second_route", [VIA_IMAP, ()])
def test_the_same_mail_twice_is_stored_once(receiver_app, second_route):
    app, receiver = receiver_app
    first = _send(receiver.port, _mail(trace=VIA_SMTP), "ann@example.org")
    again = _send(receiver.port, _mail(trace=second_route, eol="\n"), "ann@example.org")
    assert "queued as" in first and "already have it" in again
    assert first.rsplit(" ", 1)[1] == again.rsplit(" ", 1)[1]
    assert _raw_rows(app) == 1
