"""A FETCH answered OK but without one of the messages asked for does not lose that message.

Servers do this: Exchange under load, Dovecot for a message it fails to
read. The message is still in the folder, so it is not taken for one
expunged meanwhile: it stays owed, is asked for again, set aside after
FETCH_ATTEMPTS like a FETCH answered NO, and taken once the server hands
it out. The fault is injected between the poller and a real Dovecot: a
proxy swallows that one message's FETCH response and passes the rest.
"""

from __future__ import annotations

import logging
import re
import threading

import pytest

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.tcpproxy import ImapReplyFilter
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


class _Withholding:
    """Picks the FETCH response carrying the body of UID `uid`, while `on` is set."""

    def __init__(self, uid: int) -> None:
        self.on = threading.Event()
        self.on.set()
        self._body = re.compile(rb"\* \d+ FETCH \(.*\bUID %d\b.*BODY\[\]" % uid)

    def __call__(self, response: bytes) -> bool:
        return self.on.is_set() and self._body.match(response.split(b"\r\n", 1)[0]) is not None


def _set_aside_behind_a_withholding_server(make_app, sqlite_url, server: Dovecot, caplog):
    """Three mails, the second withheld by the server: the other two are taken and the second is owed."""
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    withholding = _Withholding(2)
    proxy = ImapReplyFilter("127.0.0.1", server.port, withholding).start()
    app = make_app(sqlite_url, extra=server.settings_yaml(port=proxy.port, poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):   # the first look: from UID 1 on, all mail is new
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    for n in range(1, 4):
        _append(server, _mail(f"Question {n}", f"<q{n}@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 2, timeout=15)
        assert eventually(lambda: "cannot be fetched" in caplog.text, timeout=15)
    assert proxy.dropped, "the proxy withheld nothing: the test proves nothing"
    cursor = load_cursor(app.engine, key)
    assert cursor.last_uid == 3 and cursor.owed == (2,), cursor
    flags = _flags(server)
    assert flags[2] == set() and b"\\Seen" in flags[1] and b"\\Seen" in flags[3]
    said = [r.getMessage() for r in caplog.records if "cannot be fetched" in r.getMessage()]
    assert len(said) == 1 and "uid 2" in said[0], said
    return app, key, withholding


def test_a_message_the_fetch_leaves_out_but_still_there_is_owed_and_taken_later(make_app, sqlite_url, dovecot,
                                                                                caplog):
    app, key, withholding = _set_aside_behind_a_withholding_server(make_app, sqlite_url, dovecot, caplog)
    withholding.on.clear()   # the server hands it out again; the next start asks for it
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 3, timeout=10)
        assert eventually(lambda: load_cursor(app.engine, key).owed == (), timeout=5)
    assert b"\\Seen" in _flags(dovecot)[2]
    assert drain(app) == 3


def test_a_withheld_message_a_person_deletes_is_no_longer_owed(make_app, sqlite_url, dovecot, caplog):
    app, key, _ = _set_aside_behind_a_withholding_server(make_app, sqlite_url, dovecot, caplog)
    with dovecot.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([2])
        client.expunge()
    with _polling(app):   # still withheld: only the server's SEARCH says it is gone
        assert eventually(lambda: load_cursor(app.engine, key).owed == (), timeout=10)
    assert _raw_count(app) == 2
