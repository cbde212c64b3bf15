"""The first look at a big folder of a server that leaves UIDNEXT out of its SELECT reply goes through.

The first look asks the server for its highest UID (of any server: a
UIDNEXT is a prediction, ingest/imap.py `_highest_uid_selected`). A
SEARCH ALL for it brings every UID on one line, and imaplib refuses a line
over a megabyte: some 90,000 UIDs of ten digits. The folder is a real
Dovecot maildir of 95,000 messages from UID 1,000,000,000; the SELECT reply
is read without its UIDNEXT, as such a server sends it.
"""

from __future__ import annotations

import pytest

from ingest.imap import Poller
from tests import dovecot as servers
from tests.test_imap import _polling, _raw_count
from tests.test_imap_huge_first_look import FIRST_UID, MESSAGES, _fill
from tests.waiting import eventually
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def test_the_first_look_without_uidnext_at_a_folder_of_a_hundred_thousand_mails_goes_through(
        make_app, sqlite_url, dovecot, monkeypatch):
    _fill(dovecot)
    with dovecot.client() as client:   # the fault is there: SEARCH ALL is refused by imaplib
        client.select_folder("INBOX", readonly=True)
        with pytest.raises(Exception, match="got more than"):
            client.search("ALL")
    select = Poller._select

    def _select_without_uidnext(self, client):
        info = select(self, client)
        info.pop(b"UIDNEXT", None)
        return info

    monkeypatch.setattr(Poller, "_select", _select_without_uidnext)
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None, timeout=25)
        assert eventually(lambda: _raw_count(app) >= 10, timeout=20)
    cursor = load_cursor(app.engine, key)
    assert cursor.last_uid == FIRST_UID + MESSAGES - 1   # the highest UID there is
    assert cursor.owed[-1] == FIRST_UID + MESSAGES - 1
