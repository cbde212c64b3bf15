"""The first look at a folder trusts no UIDNEXT: mail arriving then is taken, the read mail there is not.

RFC 3501 section 2.3.1.1 calls UIDNEXT a prediction, "not intended to
provide any guarantee that any message will have this unique identifier";
only the UIDs a server assigns ascend for sure. The first look once set the
cursor to UIDNEXT - 1 from the SELECT reply, so a server that said more
than it then assigned hid the mail arriving after the look below the cursor
for good, and one that said less had the read mail above it taken as new
mail: years of history made tickets. The fault is injected between the
poller and a real Dovecot: a proxy rewrites the UIDNEXT of its SELECT
replies. And mail delivered at the very moment of the first look, between
its commands, is taken, read or not.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.tcpproxy import ImapReplyFilter
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor
from ticketd.store.tables import raw_mail

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot

_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")


def _uidnext_off_by(shift: int, rewritten: list[bytes]) -> Callable[[bytes, bytes], bytes]:
    """A change that says UIDNEXT `shift` more (or less, at least 1) than the server does."""
    def change(command: bytes, response: bytes) -> bytes:
        def said(match: re.Match) -> bytes:
            return b"[UIDNEXT %d]" % max(1, int(match.group(1)) + shift)
        changed = _UIDNEXT.sub(said, response)
        if changed != response:
            rewritten.append(changed)
        return changed
    return change


def _message_ids(app) -> list[str]:
    with app.engine.connect() as conn:
        return sorted(conn.execute(select(raw_mail.c.message_id)).scalars())


def _history(server: Dovecot) -> None:
    """Three read mails and an unread one, UIDs 1 to 4, before the first look."""
    for n in range(1, 4):
        _append(server, _mail(f"Read {n}", f"<read{n}@client.example.org>"), flags=(b"\\Seen",))
    _append(server, _mail("Unread", "<unread@client.example.org>"))


def test_mail_arriving_after_a_first_look_at_a_server_saying_too_high_a_uidnext_is_taken(
        make_app, sqlite_url, dovecot):
    _history(dovecot)
    rewritten: list[bytes] = []
    proxy = ImapReplyFilter("127.0.0.1", dovecot.port, change=_uidnext_off_by(+6, rewritten)).start()
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(port=proxy.port, idle=True, poll_seconds=0.3))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)   # the unread mail the folder held
        _append(dovecot, _mail("Arrived after the look", "<after@client.example.org>"))   # UID 5
        _append(dovecot, _mail("Arrived later still", "<later@client.example.org>"))      # UID 6
        assert eventually(lambda: _raw_count(app) == 3, timeout=5), _message_ids(app)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 6)
    assert rewritten and b"[UIDNEXT 11]" in rewritten[0], "the proxy changed nothing: the test proves nothing"
    assert _message_ids(app) == ["after@client.example.org", "later@client.example.org", "unread@client.example.org"]
    assert load_cursor(app.engine, key).owed == ()
    assert all(b"\\Seen" in flags for flags in _flags(dovecot).values())
    assert drain(app) == 3


def test_the_read_mail_a_server_saying_too_low_a_uidnext_holds_is_not_taken(make_app, sqlite_url, dovecot):
    _history(dovecot)
    rewritten: list[bytes] = []
    proxy = ImapReplyFilter("127.0.0.1", dovecot.port, change=_uidnext_off_by(-3, rewritten)).start()
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(port=proxy.port, idle=False, poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
        _append(dovecot, _mail("New", "<new@client.example.org>"))   # UID 5: rounds went by once it is in
        assert eventually(lambda: "new@client.example.org" in _message_ids(app), timeout=5)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 5)
    assert rewritten and b"[UIDNEXT 2]" in rewritten[0], "the proxy changed nothing: the test proves nothing"
    assert _message_ids(app) == ["new@client.example.org", "unread@client.example.org"]
    assert load_cursor(app.engine, key).owed == ()


class _DeliverAt:
    """A change that passes every response as it is, but first delivers mail once the one `moment` picks comes by:
    the server has answered, the poller has not yet read the answer."""

    def __init__(self, server: Dovecot, moment: Callable[[bytes, bytes], bool]) -> None:
        self.server, self.moment = server, moment
        self.delivered = threading.Event()

    def __call__(self, command: bytes, response: bytes) -> bytes:
        if not self.delivered.is_set() and self.moment(command, response):
            with self.server.client() as client:   # straight to the server, not through the proxy
                client.append("INBOX", _mail("Arrived unread", "<now-unread@client.example.org>"))
                client.append("INBOX", _mail("Arrived read", "<now-read@client.example.org>"), flags=(b"\\Seen",))
            self.delivered.set()
        return response


def _select_answered(command: bytes, response: bytes) -> bool:
    return b" SELECT " in command and re.match(rb"\w+ OK ", response) is not None


def _unseen_listed(command: bytes, response: bytes) -> bool:
    """The first look's UID SEARCH for the unseen mail answered (UID 4 alone), before its tagged OK."""
    return b"UNSEEN" in command and response.startswith(b"* SEARCH 4")


@pytest.mark.parametrize("moment", [_select_answered, _unseen_listed], ids=["after-select", "after-search"])
def test_mail_delivered_during_the_first_look_is_taken_read_or_not(make_app, sqlite_url, dovecot, moment):
    _history(dovecot)
    deliver = _DeliverAt(dovecot, moment)
    proxy = ImapReplyFilter("127.0.0.1", dovecot.port, change=deliver).start()
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(port=proxy.port, idle=True, poll_seconds=0.3))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 3, timeout=5), _message_ids(app)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 6)
    assert deliver.delivered.is_set(), "nothing was delivered at that moment: the test proves nothing"
    assert _message_ids(app) == ["now-read@client.example.org", "now-unread@client.example.org",
                                 "unread@client.example.org"]
    assert load_cursor(app.engine, key).owed == ()
