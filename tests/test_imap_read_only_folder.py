"""A folder the account may only read (SELECT answers [READ-ONLY]) is polled all the same, by UID.

The fault is real: the maildir's directories are not writable by Dovecot's
mail user, so Dovecot opens the folder read-only (RFC 3501 section 6.3.1,
the READ-ONLY response code), as a shared mailbox without write rights does.
The cursor says what is new, so mail flows without \\Seen; it is neither
flagged nor moved, and the log says why once.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


@contextmanager
def _read_only(server: Dovecot):
    """The maildir's directories made unwritable for the mail user (not root) while inside."""
    box = server.root / "mail" / server.user
    dirs = [box, *(box / sub for sub in ("cur", "new", "tmp"))]
    for path in dirs:
        path.chmod(0o555)
    try:
        yield
    finally:
        for path in dirs:
            path.chmod(0o700)


def _said(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


@pytest.mark.parametrize("move_to", [None, "Done"])
def test_mail_in_a_read_only_folder_is_taken_and_left_as_it_is(make_app, sqlite_url, dovecot, caplog, move_to):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    fields = {"poll_seconds": 60} | ({"move_to": move_to} if move_to else {})
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(**fields))
    key = app.settings.imap[0].key
    with _polling(app):   # the first look: from UID 1 on, all mail is new
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    for n in range(1, 4):
        _append(dovecot, _mail(f"Question {n}", f"<q{n}@client.example.org>"))

    with _read_only(dovecot), _polling(app):
        assert eventually(lambda: _raw_count(app) == 3, timeout=15)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 3, timeout=5)
    assert _flags(dovecot) == {1: set(), 2: set(), 3: set()}   # nothing flagged, nothing moved
    warned = _said(caplog, "read-only")
    assert len(warned) == 1 and "INBOX" in warned[0], warned
    assert ("not moved to Done" in warned[0]) == bool(move_to)
    assert not _said(caplog, "not writable")   # no failure, no retry

    # Later mail is told apart by its UID alone: the three are not taken again, the fourth is.
    _append(dovecot, _mail("Question 4", "<q4@client.example.org>"))
    caplog.clear()
    with _read_only(dovecot), _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 4, timeout=15)
    assert _raw_count(app) == 4
    assert not any("already stored" in r.getMessage() for r in caplog.records)
    assert drain(app) == 4


def test_a_folder_writable_again_is_flagged_again(make_app, sqlite_url, dovecot):
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    _append(dovecot, _mail("Question 1", "<q1@client.example.org>"))
    with _read_only(dovecot), _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 1, timeout=15)
    _append(dovecot, _mail("Question 2", "<q2@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 2, timeout=15)
        assert eventually(lambda: b"\\Seen" in _flags(dovecot).get(2, set()), timeout=5)
    assert _flags(dovecot)[1] == set()   # taken while read-only: left as it was
