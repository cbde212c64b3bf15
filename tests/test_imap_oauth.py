"""IMAP login with an OAuth 2.0 access token (XOAUTH2, OAUTHBEARER) against a real Dovecot."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from ingest.imap_auth import TokenCommandError, access_token
from tests.dovecot import USER, dovecot_factory  # noqa: F401  (fixture)
from tests.test_imap import _append, _flags, _mail, _polling, _raw_count
from tests.waiting import eventually
from ticketd.settings import ImapSettings


class Introspection:
    """The identity provider's token introspection endpoint (RFC 7662) Dovecot asks about each token."""

    def __init__(self) -> None:
        self.valid: dict[str, str] = {}      # token -> user
        self.asked: list[str] = []
        introspection = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                token = form.get("token", [""])[0]
                introspection.asked.append(token)
                user = introspection.valid.get(token)
                body = json.dumps({"active": True, "username": user} if user else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/introspect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def oauth_dovecot(dovecot_factory):
    """A Dovecot that takes XOAUTH2 and OAUTHBEARER tokens, checked by a local introspection endpoint."""
    provider = Introspection()
    # Not under pytest's tmp_path (0700): Dovecot's auth process must read it.
    conf_dir = Path(tempfile.mkdtemp(prefix="ticketd-oauth-"))
    conf_dir.chmod(0o755)
    conf = conf_dir / "oauth2.conf.ext"
    conf.write_text(f"introspection_mode = post\nintrospection_url = {provider.url}\n"
                    "username_attribute = username\nactive_attribute = active\nactive_value = true\n")
    conf.chmod(0o644)
    server = dovecot_factory("auth_mechanisms = plain login xoauth2 oauthbearer\n"
                             f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {conf}\n}}\n")
    yield server, provider, conf_dir
    provider.close()
    shutil.rmtree(conf_dir, ignore_errors=True)


def _token_file(conf_dir: Path, token: str) -> Path:
    path = conf_dir / "token"
    path.write_text(token + "\n")
    return path


@pytest.mark.dovecot
@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_a_token_from_the_command_logs_in_and_mail_becomes_a_ticket(make_app, sqlite_url, oauth_dovecot, mechanism):
    server, provider, conf_dir = oauth_dovecot
    provider.valid["token-one"] = USER
    token = _token_file(conf_dir, "token-one")
    app = make_app(sqlite_url, extra=server.settings_yaml(auth=mechanism, password=None,
                                                          oauth2_token_command=f"cat {token}", idle=False,
                                                          poll_seconds=0.2))
    _append(server, _mail("Printer on fire", "<fire@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: b"\\Seen" in _flags(server)[1])
    assert _raw_count(app) == 1
    assert f"method={mechanism.upper()}" in server.log
    assert provider.asked == ["token-one"]


@pytest.mark.dovecot
def test_every_login_asks_the_command_for_a_fresh_token(make_app, sqlite_url, oauth_dovecot):
    server, provider, conf_dir = oauth_dovecot
    provider.valid["token-one"] = USER
    token = _token_file(conf_dir, "token-one")
    app = make_app(sqlite_url, extra=server.settings_yaml(auth="xoauth2", password=None,
                                                          oauth2_token_command=f"cat {token}", idle=False,
                                                          poll_seconds=0.2))
    _append(server, _mail("First", "<first@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: _raw_count(app) == 1)
        # The old token expires and the provider's tool has a new one; the
        # server restarts, and the reconnect must log in with the new token.
        server.stop()
        provider.valid = {"token-two": USER}
        _token_file(conf_dir, "token-two")
        server.start()
        _append(server, _mail("Second", "<second@client.example.org>"))
        assert eventually(lambda: _raw_count(app) == 2, timeout=20)
    assert provider.asked[-1] == "token-two"


@pytest.mark.dovecot
def test_a_refused_token_is_retried_and_never_logged(make_app, sqlite_url, oauth_dovecot, caplog):
    server, provider, conf_dir = oauth_dovecot
    token = _token_file(conf_dir, "not-a-valid-token-4711")
    app = make_app(sqlite_url, extra=server.settings_yaml(auth="xoauth2", password=None,
                                                          oauth2_token_command=f"cat {token}", idle=False))
    _append(server, _mail("Waits", "<waits@client.example.org>"))
    with _polling(app):
        assert eventually(lambda: "LoginError" in caplog.text, timeout=5)
        provider.valid["not-a-valid-token-4711"] = USER   # the provider comes round: the next try logs in
        assert eventually(lambda: _raw_count(app) == 1, timeout=10)
    assert "not-a-valid-token-4711" not in caplog.text


@pytest.mark.dovecot
def test_a_failing_command_is_reported_by_status_and_stderr(make_app, sqlite_url, oauth_dovecot, caplog):
    server, _, _ = oauth_dovecot
    command = "echo secret-token; echo 'refresh token expired, run oama authorize' >&2; exit 3"
    app = make_app(sqlite_url, extra=server.settings_yaml(auth="xoauth2", password=None,
                                                          oauth2_token_command=json.dumps(command)))
    with _polling(app):
        assert eventually(lambda: "oauth2_token_command exited with status 3" in caplog.text, timeout=5)
    assert "refresh token expired, run oama authorize" in caplog.text
    assert "secret-token" not in caplog.text
    assert "Login: user=" not in server.log


def test_access_token_takes_one_word_and_refuses_everything_else():
    assert access_token("printf 'ya29.a0-token_value\\n'") == "ya29.a0-token_value"
    assert access_token("echo ' padded '") == "padded"
    with pytest.raises(TokenCommandError, match="printed no access token"):
        access_token("true")
    with pytest.raises(TokenCommandError, match="printed no access token"):
        access_token("echo 'Enter the code shown in your browser:'")
    with pytest.raises(TokenCommandError, match="status 127: .*no-such-token-tool"):
        access_token("no-such-token-tool")
    with pytest.raises(TokenCommandError, match="did not finish within 1 s"):
        access_token("sleep 10", timeout=1)


@pytest.mark.parametrize("fields, problem", [
    ({}, "`password` is required with `auth: password`"),
    ({"auth": "xoauth2"}, "`auth: xoauth2` needs `oauth2_token_command`"),
    ({"auth": "oauthbearer", "oauth2_token_command": "  "}, "`auth: oauthbearer` needs `oauth2_token_command`"),
    ({"auth": "xoauth2", "oauth2_token_command": "oama access x", "password": "p"}, "remove `password`"),
    ({"password": "p", "oauth2_token_command": "oama access x"}, "needs `auth: xoauth2` or `auth: oauthbearer`"),
    ({"auth": "kerberos", "password": "p"}, "'password', 'xoauth2' or 'oauthbearer'"),
])
def test_settings_ask_for_the_credential_the_auth_needs(fields, problem):
    with pytest.raises(ValidationError, match=problem):
        ImapSettings(host="imap.example.com", username="support@example.com", **fields)
