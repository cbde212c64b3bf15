"""One message the server cannot hand out (FETCH fails for it alone) does not stop the mail around and after it.

The fault is real: the message's file in Dovecot's maildir is unreadable,
so Dovecot answers the FETCH of its body with an internal error and ends
the session (BYE). Every message but that one is taken; it stays on the
server untouched, is owed in the cursor, and is taken once it can be.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
# The private Dovecot's fixtures, under the names the tests ask for.
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def _message_file(server: Dovecot, subject: str) -> Path:
    """The maildir file holding the message with `subject`."""
    box = server.root / "mail" / server.user
    for path in [*box.glob("new/*"), *box.glob("cur/*")]:
        if f"Subject: {subject}\n".encode() in path.read_bytes():   # stored with LF
            return path
    raise AssertionError(f"no message {subject!r} in {box}")


def _renamed(server: Dovecot, path: Path) -> Path:
    """The same maildir file now: Dovecot moves it from new/ to cur/ and adds flags to its name (the part up to
    the first comma is its unique base name, which stays)."""
    return next((server.root / "mail" / server.user).glob(f"*/{path.name.split(',')[0]},*"))


def test_a_message_the_server_cannot_fetch_is_left_and_the_rest_of_the_mailbox_is_taken(make_app, sqlite_url,
                                                                                        dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):   # the first look: from UID 1 on, all mail is new
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    for n in range(1, 4):
        _append(dovecot, _mail(f"Question {n}", f"<q{n}@client.example.org>"))
    broken = _message_file(dovecot, "Question 2")
    broken.chmod(0)   # the mail process (not root) cannot open it
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 2, timeout=20)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 3, timeout=5)
        _append(dovecot, _mail("Question 4", "<q4@client.example.org>"))   # and the mail after it flows
        assert eventually(lambda: _raw_count(app) == 3, timeout=5)
    flags = _flags(dovecot)
    assert flags[2] == set() and all(b"\\Seen" in flags[uid] for uid in (1, 3, 4))
    assert load_cursor(app.engine, key).owed == (2,)
    said = [r.getMessage() for r in caplog.records if "cannot be fetched" in r.getMessage()]
    assert len(said) == 1 and "uid 2" in said[0], said

    # The admin repairs the file; the next start takes the message it still owes.
    _renamed(dovecot, broken).chmod(0o600)
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 4, timeout=10)
        assert eventually(lambda: load_cursor(app.engine, key).owed == (), timeout=5)
    assert b"\\Seen" in _flags(dovecot)[2]
    assert drain(app) == 4
