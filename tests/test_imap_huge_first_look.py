"""The first look at a folder with a hundred thousand unseen messages goes through, and the mail is taken.

A SEARCH reply is one line, and imaplib refuses a line over a megabyte:
with ten-digit UIDs, some 90,000 of them. The folder here is a real
Dovecot maildir of 95,000 unseen messages whose UIDs start at 1,000,000,000,
written as files (appending them one by one would take minutes), so one
SEARCH for all the unseen mail would bring some 1.05 MB.
"""

from __future__ import annotations

import logging
import os
import pwd

import pytest

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.test_imap import _polling, _raw_count
from tests.waiting import eventually
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot

MESSAGES = 95_000
FIRST_UID = 1_000_000_000


def _fill(server: Dovecot) -> None:
    """MESSAGES unseen mails in the maildir's new/, numbered by Dovecot from FIRST_UID on as it finds them."""
    with server.client() as client:   # Dovecot makes the maildir
        client.select_folder("INBOX")
    box = server.root / "mail" / server.user
    (box / "dovecot-uidlist").write_text(f"3 V1 N{FIRST_UID}\n")
    for n in range(MESSAGES):
        (box / "new" / f"1700000000.M{n}P1.test").write_bytes(
            b"From: cust@example.org\nTo: support@example.com\nSubject: Question %d\n"
            b"Message-ID: <q%d@client.example.org>\n\nThe printer is on fire.\n" % (n, n))
    if os.geteuid() == 0:   # Dovecot's mail user must own what it finds there
        owner = pwd.getpwnam("nobody")
        for path in [box / "dovecot-uidlist", *(box / "new").iterdir()]:
            os.chown(path, owner.pw_uid, owner.pw_gid)


def test_the_first_look_at_a_folder_of_a_hundred_thousand_unseen_mails_goes_through(make_app, sqlite_url,
                                                                                    dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    _fill(dovecot)
    with dovecot.client() as client:   # the fault is there: one SEARCH for all of it is refused by imaplib
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == MESSAGES
        with pytest.raises(Exception, match="got more than"):
            client.search(["UNSEEN"])
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None, timeout=60)
        assert eventually(lambda: _raw_count(app) >= 10, timeout=20)   # and the mail is taken, oldest first
    cursor = load_cursor(app.engine, key)
    assert cursor.last_uid == FIRST_UID + MESSAGES - 1
    taken = _raw_count(app)
    assert cursor.owed[0] >= FIRST_UID + taken - 10   # left owed: the messages not taken yet, and only those
    assert cursor.owed == tuple(range(cursor.owed[0], FIRST_UID + MESSAGES)), cursor.owed[:5]
    assert f"taking the {MESSAGES} unseen message(s)" in caplog.text
