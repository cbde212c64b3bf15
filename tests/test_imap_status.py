"""`ticketd status` tells how each IMAP mailbox polls: its last good poll, or the error it fails with and since when.

The pollers write it to the database the daemon and the CLI share; the
faults are real ones at the private Dovecot: a wrong password, nobody
listening.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager

import pytest
from imapclient import IMAPClient
from jinja2.filters import do_filesizeformat

from ingest.imap import Poller
from tests.cli import run_cli
from tests.conftest import free_port, write_config
from tests.dovecot import dovecot, dovecot_factory  # noqa: F401  (fixtures)
from tests.test_imap import _append, _mail
from tests.test_imap_oauth import _token_file, oauth_dovecot  # noqa: F401  (fixture)
from tests.waiting import eventually
from ticketd.app import build_app
from ticketd.settings import load_settings

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _desk(tmp_path, sqlite_url, imap_yaml: str):
    """ticketd.yaml with `imap_yaml`, and the App a poller runs in; `ticketd status` reads the same database."""
    config = write_config(tmp_path, sqlite_url, extra=imap_yaml)
    return config, build_app(load_settings(config, environ={}))


@contextmanager
def _polling(app):
    pollers = [Poller(app, box) for box in app.settings.imap]
    for poller in pollers:
        poller.start()
    try:
        yield
    finally:
        for poller in pollers:
            poller.stop()


def _status(config) -> tuple[dict, str]:
    """`ticketd status --json` and `ticketd status`: no daemon runs here, so both exit 2 (critical) whatever
    the mailboxes (tests/test_status_exit.py)."""
    as_json, as_text = run_cli(config, "status", "--json"), run_cli(config, "status")
    assert as_json.returncode == 2 and as_text.returncode == 2, as_json.stderr + as_text.stderr
    return json.loads(as_json.stdout), as_text.stdout


def _imap_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("imap ")]


@pytest.mark.dovecot
def test_a_wrong_password_is_a_failing_mailbox_in_status_until_a_poll_goes_through(tmp_path, sqlite_url, dovecot):
    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(password="not-the-password", poll_seconds=0.2))
    key = app.settings.imap[0].key
    desk, text = _status(config)
    assert desk["imap"] == [{"mailbox": key, "state": "not polled yet", "last_ok_at": None, "error": None,
                             "failing_since": None, "failures": 0, "oversized": 0, "oversized_largest_bytes": None,
                             "set_aside": 0, "set_aside_uids": []}]
    assert _imap_lines(text) == [f"imap     {key}: not polled yet"]

    with _polling(app):
        failing = eventually(lambda: (d := _status(config)[0]["imap"][0])["failures"] >= 2 and d, timeout=20)
    assert failing["state"] == "failing" and failing["last_ok_at"] is None
    assert "login refused" in failing["error"] and "AUTHENTICATIONFAILED" in failing["error"], failing
    assert ISO.match(failing["failing_since"])
    desk, text = _status(config)
    assert desk["imap"][0]["failing_since"] == failing["failing_since"]   # since the first failure, not the last
    [line] = _imap_lines(text)
    assert line.startswith(f"imap     {key}: FAILING since {failing['failing_since']}"), line
    assert "AUTHENTICATIONFAILED" in line and "never polled" in line, line
    assert "not-the-password" not in json.dumps(desk) + text

    # The admin puts the right password in ticketd.yaml and restarts: the next good poll clears the failure.
    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(poll_seconds=0.2))
    assert app.settings.imap[0].key == key
    began = time.time()
    with _polling(app):
        ok = eventually(lambda: (d := _status(config)[0]["imap"][0])["state"] == "ok" and d, timeout=20)
    assert (ok["error"], ok["failing_since"], ok["failures"]) == (None, None, 0)
    assert ISO.match(ok["last_ok_at"]) and _epoch(ok["last_ok_at"]) >= int(began) - 1
    [line] = _imap_lines(_status(config)[1])
    assert line == f"imap     {key}: polling, last poll {ok['last_ok_at']}", line


@pytest.mark.dovecot
def test_a_server_nobody_answers_on_is_failing_and_the_other_mailbox_is_not(tmp_path, sqlite_url, dovecot):
    down_port = free_port()
    good = dovecot.settings_yaml(poll_seconds=0.2)
    down = dovecot.settings_yaml(port=down_port, poll_seconds=0.2).replace("imap:\n", "")
    config, app = _desk(tmp_path, sqlite_url, good + down)
    def states_then_boxes():
        boxes = _status(config)[0]["imap"]
        return [b["state"] for b in boxes] == ["ok", "failing"] and boxes

    with _polling(app):
        boxes = eventually(states_then_boxes, timeout=20)
    assert "Connection refused" in boxes[1]["error"] and f":{down_port}/INBOX" in boxes[1]["mailbox"]
    lines = _imap_lines(_status(config)[1])
    assert "polling" in lines[0] and "FAILING" in lines[1] and "Connection refused" in lines[1]


@pytest.mark.dovecot
@pytest.mark.parametrize("token, said", [
    ("cat {file}", "login refused (LoginError)"),   # the provider refuses the token
    ("echo not-a-token-4711; echo 'refresh token expired' >&2; exit 3",
     "oauth2_token_command exited with status 3: refresh token expired"),
])
def test_an_oauth_login_that_fails_is_a_failing_mailbox_and_the_token_is_never_shown(tmp_path, sqlite_url,
                                                                                     oauth_dovecot, token, said):
    server, _, conf_dir = oauth_dovecot
    command = token.format(file=_token_file(conf_dir, "not-a-token-4711"))
    config, app = _desk(tmp_path, sqlite_url, server.settings_yaml(
        auth="xoauth2", password=None, oauth2_token_command=json.dumps(command), poll_seconds=0.2))
    with _polling(app):
        box = eventually(lambda: (d := _status(config)[0]["imap"][0])["state"] == "failing" and d, timeout=20)
    assert said in box["error"], box
    desk, text = _status(config)
    assert "FAILING" in _imap_lines(text)[0]
    assert "not-a-token-4711" not in json.dumps(desk) + text


@pytest.mark.dovecot
def test_a_password_beyond_ascii_without_auth_plain_is_a_failing_mailbox_saying_why(tmp_path, sqlite_url,
                                                                                   dovecot_factory):
    """IMAP LOGIN carries ASCII only; a server offering no AUTHENTICATE PLAIN cannot take such a password
    (tests/test_imap.py logs in by SASL PLAIN where it is offered). The password is never shown."""
    server = dovecot_factory("auth_mechanisms = login")
    password = "Pässwörd-2024"
    (server.root / "passwd").write_text(f"{server.user}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
    with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10) as client:   # offered before login
        assert b"AUTH=LOGIN" in client.capabilities() and b"AUTH=PLAIN" not in client.capabilities()
    config, app = _desk(tmp_path, sqlite_url, server.settings_yaml(password=f'"{password}"', poll_seconds=0.2))
    with _polling(app):
        box = eventually(lambda: (d := _status(config)[0]["imap"][0])["state"] == "failing" and d, timeout=20)
    assert "outside ASCII, which IMAP LOGIN cannot send" in box["error"] and "AUTH=PLAIN" in box["error"], box
    desk, text = _status(config)
    assert "FAILING" in _imap_lines(text)[0]
    assert password not in json.dumps(desk) + text and "Pässwörd" not in json.dumps(desk) + text


@pytest.mark.dovecot
def test_mail_left_on_the_server_for_its_size_is_in_status_until_a_raised_limit_takes_it(tmp_path, sqlite_url,
                                                                                        dovecot):
    scans = [_mail(f"Scan {n}", f"<scan{n}@client.example.org>", "x" * 70 + "\n" * 100 + "y" * size)
             for n, size in ((1, 5000), (2, 9000))]
    for raw in scans + [_mail("Question", "<question@client.example.org>", "Where is my order?\n")]:
        _append(dovecot, raw)
    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(poll_seconds=0.2, max_message_bytes=4000))
    key = app.settings.imap[0].key
    with _polling(app):
        box = eventually(lambda: (d := _status(config)[0]["imap"][0])["oversized"] and d, timeout=20)
    assert box, "status never counted the mail left on the server"
    assert box["state"] == "ok" and box["oversized"] == 2, box
    largest = box["oversized_largest_bytes"]
    assert len(scans[1]) <= largest <= len(scans[1]) + 200, box   # the server's size, its line endings CRLF
    desk, text = _status(config)
    [problem] = [p for p in desk["problems"] if p["part"] == "imap"]
    assert problem["state"] == "warning" and problem["text"] == (
        f"mailbox {key}: 2 messages over max_message_bytes (the largest {do_filesizeformat(largest)}) left on the "
        f"server, not taken: raise its max_message_bytes in ticketd.yaml to take them, or handle them in the "
        f"mailbox"), problem
    [line] = _imap_lines(text)
    assert line.endswith(f"; 2 messages over max_message_bytes (the largest {do_filesizeformat(largest)}) LEFT "
                         f"ON THE SERVER"), line
    assert do_filesizeformat(largest).endswith(" kB")

    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(poll_seconds=0.2, max_message_bytes=8000))
    with _polling(app):
        box = eventually(lambda: (d := _status(config)[0]["imap"][0])["oversized"] == 1 and d, timeout=20)
    assert box["oversized_largest_bytes"] == largest   # the first scan taken, the second still too big
    config, app = _desk(tmp_path, sqlite_url, dovecot.settings_yaml(poll_seconds=0.2))
    with _polling(app):
        box = eventually(lambda: (d := _status(config)[0]["imap"][0])["oversized"] == 0 and d, timeout=20)
    assert box["oversized_largest_bytes"] is None
    desk, text = _status(config)
    assert not [p for p in desk["problems"] if p["part"] == "imap"] and "LEFT ON" not in text


def test_without_imap_status_lists_no_mailbox(tmp_path, sqlite_url):
    config, _ = _desk(tmp_path, sqlite_url, "")   # the daemon's database, with no mailbox configured
    desk, text = _status(config)
    assert desk["imap"] == [] and _imap_lines(text) == []


def _epoch(iso: str) -> int:
    from calendar import timegm

    return timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))
