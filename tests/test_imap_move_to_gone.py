"""The move_to folder deleted by a person, or refused by the server, while the poller runs: mail keeps flowing.

A folder deleted (or renamed) is created again at once: the server says
[TRYCREATE] (RFC 3501 section 6.4.7) and the mail is moved there, not
fetched again. A folder the server refuses to move into (the account
lost its insert right, RFC 4314: here a real Dovecot ACL) leaves the mail
flagged \\Seen where it is; the log says so once, and the mail after it is
taken all the same.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest

from tests import dovecot as servers
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def _said(caplog, words: str, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and words in r.getMessage()]


def test_a_move_to_folder_a_person_deletes_is_created_again_and_nothing_is_fetched_twice(make_app, sqlite_url,
                                                                                         dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(move_to="Done", poll_seconds=0.2))
    with _polling(app):
        _append(dovecot, _mail("Question 1", "<q1@client.example.org>"))
        assert eventually(lambda: len(_flags(dovecot, "Done")) == 1, timeout=10)
        with dovecot.client() as client:   # a person tidies up the mailbox
            client.delete_folder("Done")
        for n in (2, 3):
            _append(dovecot, _mail(f"Question {n}", f"<q{n}@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 3, timeout=10)
        assert eventually(lambda: _flags(dovecot) == {}, timeout=10)
    assert list(_flags(dovecot, "Done").values()) == [{b"\\Seen"}, {b"\\Seen"}]
    assert not _said(caplog, "already stored")   # moved, not fetched again
    created = _said(caplog, "created it again")
    assert len(created) == 1 and "Done" in created[0], created
    assert not _said(caplog, "reconnecting")
    assert drain(app) == 3


@pytest.fixture
def acl_dovecot(dovecot_factory):
    """Start a Dovecot whose ACL (a global vfile, RFC 4314 rights) grants the account the `rules` given."""
    made: list[Path] = []

    def _start(rules: str) -> servers.Dovecot:
        acl = Path(tempfile.mkdtemp(prefix="ticketd-acl-")) / "global-acl"
        made.append(acl)
        acl.parent.chmod(0o755)   # read by Dovecot's unprivileged mail process
        acl.write_text(rules)
        acl.chmod(0o644)
        return dovecot_factory(f"mail_plugins = $mail_plugins acl\nplugin {{\n  acl = vfile:{acl}\n}}")

    yield _start
    for acl in made:
        acl.unlink()
        acl.parent.rmdir()


def test_a_move_the_server_refuses_every_round_leaves_the_mail_flagged_and_the_rest_flows(make_app, sqlite_url,
                                                                                          acl_dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    server = acl_dovecot("Done owner lr\n")   # may look into Done, not put mail there (no i)
    app = make_app(sqlite_url, extra=server.settings_yaml(move_to="Done", poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):   # the first look; it creates Done
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
    for n in range(1, 13):   # more than one FETCH batch
        _append(server, _mail(f"Question {n}", f"<q{n}@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 12, timeout=15)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 12, timeout=5)
        _append(server, _mail("Question 13", "<q13@client.example.org>"))   # and later mail too
        assert eventually(lambda: _raw_count(app) == 13, timeout=10)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 13, timeout=5)
    flags = _flags(server)
    assert len(flags) == 13 and all(b"\\Seen" in f for f in flags.values()), flags
    assert _flags(server, "Done") == {}
    assert not _said(caplog, "already stored")   # each fetched once
    refused = _said(caplog, "cannot move", logging.WARNING)
    assert len(refused) == 1, refused
    assert "Done" in refused[0] and "NOPERM" in refused[0] and "move_to" in refused[0], refused
    assert drain(app) == 13


def test_a_move_to_folder_gone_that_the_account_may_not_create_leaves_the_mail_flagged(make_app, sqlite_url,
                                                                                      acl_dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    server = acl_dovecot("* owner lrwstipe\n")   # every right but k: no folder can be created
    app = make_app(sqlite_url, extra=server.settings_yaml(move_to="Done", poll_seconds=0.2))
    key = app.settings.imap[0].key
    _append(server, _mail("Question 1", "<q1@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None, timeout=10)
        _append(server, _mail("Question 2", "<q2@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 2, timeout=10)
        assert eventually(lambda: load_cursor(app.engine, key).last_uid == 2, timeout=5)
    assert all(b"\\Seen" in f for f in _flags(server).values())
    refused = _said(caplog, "cannot move", logging.WARNING)
    assert len(refused) == 1 and "Done" in refused[0] and "could not be created" in refused[0], refused
    assert not _said(caplog, "reconnecting")
    assert drain(app) == 2
