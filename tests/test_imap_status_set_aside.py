"""`ticketd status` tells of a message the IMAP poller set aside: the server refused to hand it out, so it waits
in the mailbox unread while the rest of the mail flows and the mailbox polls well.

The fault is real (tests/test_imap_unfetchable_message.py): the message's
file in Dovecot's maildir is unreadable.
"""

from __future__ import annotations

import pytest

from tests import dovecot as servers
from tests.test_imap import _append, _mail, _polling, _raw_count
from tests.test_imap_status import _desk, _imap_lines, _status
from tests.test_imap_unfetchable_message import _message_file, _renamed
from tests.waiting import eventually
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
# The private Dovecot's fixtures, under the names the tests ask for.
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def test_a_message_set_aside_is_a_warning_of_status_until_it_is_taken(tmp_path, sqlite_url, dovecot):
    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):   # the first look: from UID 1 on, all mail is new
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    for n in range(1, 4):
        _append(dovecot, _mail(f"Question {n}", f"<q{n}@client.example.org>"))
    broken = _message_file(dovecot, "Question 2")
    broken.chmod(0)   # the mail process (not root) cannot open it
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 2, timeout=20)
        desk = eventually(lambda: (d := _status(config)[0])["imap"][0].get("set_aside") and d, timeout=20)
    [box] = desk["imap"]
    # The mailbox polls well (the mail after it is taken), and still the message waits there.
    assert box["state"] == "ok" and box["set_aside"] == 1 and box["set_aside_uids"] == [2], box
    [problem] = [p for p in desk["problems"] if p["part"] == "imap"]
    assert problem["state"] == "warning", problem
    assert f"mailbox {key}" in problem["text"] and "uid 2" in problem["text"], problem
    assert desk["checks"]["imap"]["state"] == "warning"
    [line] = _imap_lines(_status(config)[1])
    assert line.startswith(f"imap     {key}: polling") and "1 message SET ASIDE (uid 2)" in line, line

    # The admin repairs the file; the next start takes it, and status no longer tells of it.
    _renamed(dovecot, broken).chmod(0o600)
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 3, timeout=10)
        desk = eventually(lambda: (d := _status(config)[0])["imap"][0]["set_aside"] == 0 and d, timeout=20)
    assert desk["imap"][0]["set_aside_uids"] == []
    assert [p for p in desk["problems"] if p["part"] == "imap"] == []
