"""A private Dovecot IMAP server for tests: own config, port, maildir and logs under a temp dir."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl as ssl_lib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

USER = "support"
PASSWORD = "test-password"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = ticketd-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
# Plain LOGIN over loopback only: the listener is bound to 127.0.0.1.
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_uid = {mail_user}
mail_gid = {mail_group}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    from tests.ports import free_port

    return free_port()


class Dovecot:
    """One Dovecot master in the foreground (-F); stop() and start() keep the mail."""

    def __init__(self, binary: str, extra_config: str = "", tls: bool = False, starttls: bool = False) -> None:
        self.binary = binary
        self.extra_config = extra_config
        self.tls = tls  # implicit TLS (imaps) with a fresh self-signed certificate
        self.starttls = starttls  # plain port, TLS required (STARTTLS) before login
        self.port = _free_port()
        self.user, self.password = USER, PASSWORD
        # Not under pytest's tmp_path: that is 0700 and the unprivileged mail
        # and login users Dovecot switches to must be able to walk the path.
        self.root = Path(tempfile.mkdtemp(prefix="ticketd-dovecot-"))
        self.root.chmod(0o755)
        self._proc: subprocess.Popen | None = None
        self._write_config()

    def _write_config(self) -> None:
        if os.geteuid() == 0:
            # imap-login refuses to run as root; mail is owned by nobody.
            login_user, internal_user, mail_user, mail_group = "dovenull", "dovecot", "nobody", "nogroup"
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            login_user = internal_user = mail_user = me
            mail_group = grp.getgrgid(os.getegid()).gr_name
        mail = self.root / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            os.chown(mail, pwd.getpwnam(mail_user).pw_uid, grp.getgrnam(mail_group).gr_gid)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        ssl = "ssl = no"
        if self.tls or self.starttls:
            cert, key = self.root / "cert.pem", self.root / "key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                 "-keyout", str(key), "-out", str(cert)],
                check=True, capture_output=True)
            ssl = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}"
        self.config = self.root / "dovecot.conf"
        self.config.write_text(_CONFIG.format(
            root=self.root, port=self.port, login_user=login_user, internal_user=internal_user,
            mail_user=mail_user, mail_group=mail_group, ssl=ssl,
            imap_port=0 if self.tls else self.port, imaps_port=self.port if self.tls else 0,
        ) + self.extra_config + "\n")

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def session_pids(self) -> list[int]:
        """The imap processes that served logins so far, oldest first (from the log)."""
        return [int(pid) for pid in re.findall(r"Login: user=<[^>]*>.*?mpid=(\d+)", self.log)]

    def start(self, timeout: float = 10) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Its own process group: the master leaves serving imap processes
            # behind when it exits, and stop() must end those too.
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                out = self._proc.stdout.read().decode(errors="replace")
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}:\n{out}\n{self.log}")
            try:
                if self._greets():
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on 127.0.0.1:{self.port} within {timeout}s\n{self.log}")

    def _greets(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            if self.tls:
                context = ssl_lib.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl_lib.CERT_NONE
                with context.wrap_socket(sock) as tls:
                    return tls.recv(64).startswith(b"* OK")
            return sock.recv(64).startswith(b"* OK")

    def stop(self) -> None:
        """Stop the master and every process it started, so client sessions are cut."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the master leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            proc.stdout.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            if time.monotonic() > deadline:
                os.killpg(pgid, signal.SIGKILL)
                return
            time.sleep(0.02)

    def client(self) -> IMAPClient:
        """A logged-in plaintext client, as a mail user agent would connect."""
        context = None
        if self.tls or self.starttls:
            context = ssl_lib.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl_lib.CERT_NONE
        client = IMAPClient("127.0.0.1", port=self.port, ssl=self.tls, ssl_context=context, timeout=10)
        if self.starttls:
            client.starttls(context)
        client.login(self.user, self.password)
        return client

    def settings_yaml(self, **fields) -> str:
        """An `imap:` block for ticketd.yaml pointing at this server."""
        values = dict(host="127.0.0.1", port=self.port, ssl=self.tls, starttls=self.starttls, username=self.user,
                      password=self.password, folder="INBOX", poll_seconds=1)
        values.update(fields)
        lines = ["imap:"]
        for i, (key, value) in enumerate(values.items()):
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif value is None:
                value = "null"
            lines.append(f"  {'- ' if i == 0 else '  '}{key}: {value}")
        return "\n".join(lines) + "\n"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def dovecot_factory():
    """Start private Dovecots with extra config lines; a missing binary fails, never skips."""
    binary = dovecot_binary()
    if binary is None:
        pytest.fail("dovecot is not installed: install dovecot-imapd (apt-get install dovecot-imapd); "
                    "the IMAP tests need a real server", pytrace=False)
    servers: list[Dovecot] = []

    def _start(extra_config: str = "", tls: bool = False, starttls: bool = False) -> Dovecot:
        server = Dovecot(binary, extra_config, tls, starttls)
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in servers:
        server.remove()


@pytest.fixture
def dovecot(dovecot_factory) -> Dovecot:
    """A running private Dovecot with its default capabilities (IDLE, MOVE, UIDPLUS)."""
    return dovecot_factory()
