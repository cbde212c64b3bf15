"""Taking the mail a first look owes rewrites the cursor's owed list seldom, and no mail is lost for it.

A first look at a folder of twenty thousand unseen messages, every other
message read (so the owed set is twenty thousand runs, some 110 kB), once
wrote the whole owed list after every batch of ten: O(n) a batch, O(n^2) to
take it all. Here a few hundred are taken; the owed list must be written a
few times, not once a batch, and every unseen UID not taken is still owed.
"""

from __future__ import annotations

import logging
import os
import pwd
import re

import pytest
from imapclient import SEEN
from sqlalchemy import event

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.test_imap import _polling, _raw_count
from tests.waiting import eventually
from ticketd.store.imap_cursor import load_cursor, uid_set

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot

UNSEEN = 20_000
TAKEN = 300


def _fill(server: Dovecot) -> list[int]:
    """2 * UNSEEN mails, every other one read: the UIDs of the unseen ones."""
    with server.client() as client:   # Dovecot makes the maildir
        client.select_folder("INBOX")
    box = server.root / "mail" / server.user
    for n in range(2 * UNSEEN):
        (box / "new" / f"1700000000.M{n:06d}P1.test").write_bytes(
            b"From: cust@example.org\nTo: support@example.com\nSubject: Question %d\n"
            b"Message-ID: <q%d@client.example.org>\n\nThe printer is on fire.\n" % (n, n))
    if os.geteuid() == 0:   # Dovecot's mail user must own what it finds there
        owner = pwd.getpwnam("nobody")
        for path in (box / "new").iterdir():
            os.chown(path, owner.pw_uid, owner.pw_gid)
    with server.client() as client:
        client.select_folder("INBOX")
        uids = sorted(client.search(["ALL"]))
        read = uids[1::2]
        for start in range(0, len(read), 2000):   # a command line within Dovecot's 64 kB
            client.add_flags(read[start:start + 2000], [SEEN], silent=True)
    return uids[0::2]


def test_taking_owed_mail_rewrites_the_owed_list_seldom_and_loses_none(make_app, sqlite_url, dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    unseen = _fill(dovecot)
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    written: list[int] = []   # the size of each owed list written to imap_cursor

    @event.listens_for(app.engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if "imap_cursor" in statement and statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            values = parameters.values() if isinstance(parameters, dict) else parameters
            written.append(max((len(v) for v in values if isinstance(v, str)), default=0))

    with _polling(app):
        assert eventually(lambda: _raw_count(app) >= TAKEN, timeout=25)
    cursor = load_cursor(app.engine, key)
    whole = len(uid_set(unseen))
    assert written[0] == whole   # the first look
    rewritten = sum(written[1:])
    assert rewritten <= 3 * whole, (f"{len(written) - 1} cursor writes of {rewritten} bytes for "
                                    f"{_raw_count(app)} mails taken")
    stored = {int(uid) for uid in re.findall(r"uid (\d+) Message-ID \S+ stored as", caplog.text)}
    assert set(cursor.owed) <= set(unseen)
    assert not set(unseen) - set(cursor.owed) - stored   # every unseen mail is taken or still owed
