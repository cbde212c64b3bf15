"""A round after an import of a hundred thousand messages goes through, and the mail is taken.

The round's search for the mail above the cursor (`UID last+1:*`) brings
one line, and imaplib refuses a line over a megabyte: some 90,000 UIDs of
ten digits. The folder here is a real Dovecot maildir of 95,000 messages
whose UIDs start at 1,000,000,000, all of them above the cursor, as after an
import between two rounds.
"""

from __future__ import annotations

import pytest

from tests import dovecot as servers
from tests.test_imap import _polling, _raw_count
from tests.test_imap_huge_first_look import FIRST_UID, MESSAGES, _fill
from tests.waiting import eventually
from ticketd.store.imap_cursor import load_cursor, save_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def test_a_round_after_an_import_of_a_hundred_thousand_mails_goes_through(make_app, sqlite_url, dovecot):
    _fill(dovecot)   # UIDVALIDITY 1
    with dovecot.client() as client:   # the fault is there: one SEARCH for the new mail is refused by imaplib
        client.select_folder("INBOX", readonly=True)
        with pytest.raises(Exception, match="got more than"):
            client.search(["UID", f"{FIRST_UID - 5}:*"])
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    save_cursor(app.engine, key, 1, FIRST_UID - 5)   # an earlier round saw the folder before the import
    with _polling(app):
        assert eventually(lambda: _raw_count(app) >= 20, timeout=25)   # taken, oldest first
    cursor = load_cursor(app.engine, key)
    assert cursor.uidvalidity == 1 and cursor.owed == ()
    assert FIRST_UID + 19 <= cursor.last_uid < FIRST_UID + MESSAGES
    assert cursor.last_uid - FIRST_UID + 1 <= _raw_count(app)
