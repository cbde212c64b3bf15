"""The polled folder deleted or renamed while the daemon runs: the log names it and says what to do, once.

The SELECT fails at every retry (RFC 3501 section 6.3.1: NO, no such
mailbox); the poller backs off as for any failure of the mailbox, and
`ticketd status` counts the tries. Once the folder is there again, mail
flows; under its new UIDVALIDITY the unseen mail in it is taken.
"""

from __future__ import annotations

import logging

import pytest

from tests import dovecot as servers
from tests.test_imap import _append, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.pipeline import drain
from ticketd.store.imap_cursor import load_cursor
from ticketd.store.imap_health import load_health

pytestmark = pytest.mark.dovecot
dovecot_factory = servers.dovecot_factory
dovecot = servers.dovecot


def _warnings(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and words in r.getMessage()]


def test_the_polled_folder_deleted_is_named_once_with_what_to_do_and_polled_again_once_back(make_app, sqlite_url,
                                                                                            dovecot, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    with dovecot.client() as client:
        client.create_folder("Support")
    app = make_app(sqlite_url, extra=dovecot.settings_yaml(folder="Support", poll_seconds=0.2))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_cursor(app.engine, key) is not None)
        with dovecot.client() as client:   # a person deletes it in webmail (or renames it)
            client.rename_folder("Support", "Support-2024")
        assert eventually(lambda: (h := load_health(app.engine).get(key)) is not None and h.failures >= 3,
                          timeout=20)
        said = _warnings(caplog, "cannot open the folder")
        assert len(said) == 1, said
        assert "Support" in said[0] and "imap[].folder" in said[0] and "create it" in said[0], said
        assert "cannot open the folder Support" in load_health(app.engine)[key].error
        with dovecot.client() as client:
            client.create_folder("Support")
        _append(dovecot, _mail("Back again", "<back@client.example.org>"), folder="Support")
        assert eventually(lambda: _raw_count(app) == 1, timeout=20)   # the next retry: up to 8 s on
    assert len(_warnings(caplog, "cannot open the folder")) == 1
    assert drain(app) == 1
