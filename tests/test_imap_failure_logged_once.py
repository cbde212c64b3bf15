"""A mailbox that keeps failing (a password changed on the server) is said once in the log, not at every retry.

The poller retries with a growing delay, up to a minute, for as long as it
fails: a line for each attempt buried the log over a night. `ticketd status`
counts the attempts; the log says when it began, when the failure changes,
and when the mailbox works again.
"""

from __future__ import annotations

import logging

import pytest

from tests import dovecot as servers
from tests.dovecot import Dovecot
from tests.test_imap import _append, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.store.imap_health import load_health

pytestmark = pytest.mark.dovecot
# The private Dovecot's fixtures, under the names the tests ask for.
dovecot_factory = servers.dovecot_factory


def _set_password(server: Dovecot, password: str) -> None:
    # passwd-file is read again once it changed: no restart, as on a real server.
    (server.root / "passwd").write_text(f"{server.user}:{{PLAIN}}{password}::::::\n")


def _warnings(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_a_refused_login_is_said_once_while_retried_and_its_end_is_said_too(make_app, sqlite_url, dovecot_factory,
                                                                           caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    server = dovecot_factory("auth_failure_delay = 0")   # Dovecot's 2 s pause after a wrong password
    app = make_app(sqlite_url, extra=server.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    _set_password(server, "changed-by-the-mail-admin")
    with _polling(app):
        assert eventually(lambda: (h := load_health(app.engine).get(key)) is not None and h.failures >= 3,
                          timeout=20)
        refused = _warnings(caplog, "login refused")
        assert len(refused) == 1 and "AUTHENTICATIONFAILED" in refused[0], refused
        _set_password(server, server.password)   # the admin puts the old password back
        _append(server, _mail("After the password", "<password@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 1, timeout=40)   # the next retry: up to 16 s on
        assert eventually(lambda: "works again after" in caplog.text, timeout=5)
    assert len(_warnings(caplog, "login refused")) == 1
    assert caplog.text.count("works again after") == 1


def test_a_different_failure_is_said_and_after_working_again_the_same_one_is_said_again(make_app, sqlite_url,
                                                                                      dovecot_factory, caplog):
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    server = dovecot_factory("auth_failure_delay = 0")
    app = make_app(sqlite_url, extra=server.settings_yaml(poll_seconds=60))
    key = app.settings.imap[0].key
    with _polling(app):
        assert eventually(lambda: load_health(app.engine).get(key) is not None)
        server.stop()   # the server goes away: the session ends, then nobody answers
        assert eventually(lambda: load_health(app.engine)[key].failures >= 3, timeout=10)
        assert len(_warnings(caplog, "Connection refused")) == 1
        _set_password(server, "changed-by-the-mail-admin")
        server.start()  # back, with another password: a different failure, said too
        assert eventually(lambda: len(_warnings(caplog, "login refused")) == 1, timeout=70)
        _set_password(server, server.password)
        assert eventually(lambda: "works again after" in caplog.text, timeout=70)
        _set_password(server, "changed-again")
        server.stop()
        server.start()   # cuts the session; the login is refused again: a new failure, said again
        assert eventually(lambda: len(_warnings(caplog, "login refused")) == 2, timeout=10)
