"""`outbound.ssl: true` (implicit TLS, port 465) without TLS from the smarthost: mail retried, never in clear.

RFC 8314 section 3.3: on a submission port with implicit TLS the TLS
handshake comes first, and a client does not fall back to plain text. A
handshake cut off, a certificate that does not verify, or a plain SMTP
server on that port refuse every mail alike: the admin reads it once per
outage as an error, and once that it ended.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from outbound.send import RETRY, SENT, send_raw
from tests.sink import customer_mail
from tests.test_outbound_recipient_answers import ScriptedSmarthost
from ticketd.settings import OutboundSettings

RAW = customer_mail(sender="support@example.com").as_bytes()

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")


def _certificate(folder: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


class ImplicitTlsSmarthost(ScriptedSmarthost):
    """Port 465 as `mode` says: "tls" (handshake, then SMTP), "refuse" (the handshake cut off), "plain" (plain SMTP)."""

    def __init__(self, cert: str, key: str, mode: str) -> None:
        self.mode, self.heard = mode, bytearray()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)
        super().__init__()

    def _serve(self, conn: socket.socket, number: int) -> None:
        """One connection, served as the mode is when it comes."""
        try:
            if self.mode == "refuse":
                conn.recv(4096)   # the client's hello, answered by closing
            elif self.mode == "plain":
                conn.sendall(b"220 mx.example.net ESMTP\r\n")
                while data := conn.recv(4096):
                    self.heard += data
            else:
                conn = self._tls.wrap_socket(conn, server_side=True)
                self._dialogue(conn, conn.makefile("rb"), number)
        except OSError:
            pass
        finally:
            conn.close()


def _said(caplog, port: int, level: int, words: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == level and f"127.0.0.1:{port}" in r.getMessage() and words in r.getMessage()]


@pytest.mark.parametrize("fault", ["handshake refused", "certificate not verifying", "plain text"])
def test_no_tls_on_465_mail_retried_never_in_clear_outage_said_once(tmp_path, caplog, monkeypatch, fault):
    cert, key = _certificate(tmp_path)
    mode = {"handshake refused": "refuse", "plain text": "plain"}.get(fault, "tls")
    server = ImplicitTlsSmarthost(cert, key, mode)
    settings = OutboundSettings(host="127.0.0.1", port=server.port, ssl=True, timeout_seconds=2,
                                verify_certificates=fault == "certificate not verifying")
    try:
        results = [send_raw(settings, "support@example.com", f"c{n}@example.org", RAW) for n in range(4)]
        assert [r.outcome for r in results] == [RETRY] * 4
        assert server.connections == 4   # each mail looked, none waited for a hold
        assert not server.commands and b"MAIL" not in server.heard and b"support@" not in server.heard
        [error] = _said(caplog, server.port, logging.ERROR)
        assert "TLS" in error and "outbound.ssl" in error

        # The admin trusts the certificate, or the smarthost speaks TLS on 465 again: mail goes, said once.
        if fault == "certificate not verifying":
            monkeypatch.setenv("SSL_CERT_FILE", cert)
        server.mode = "tls"
        assert [send_raw(settings, "support@example.com", f"d{n}@example.org", RAW).outcome
                for n in range(2)] == [SENT] * 2
        assert len(_said(caplog, server.port, logging.WARNING, "TLS again")) == 1
        assert len(_said(caplog, server.port, logging.ERROR)) == 1
    finally:
        server.stop()
