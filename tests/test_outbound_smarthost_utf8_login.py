"""A smarthost account whose name or password goes beyond ASCII logs in, its mail sent, not failed for good.

RFC 4616 section 2 (PLAIN) carries the user name and password in UTF-8, and
providers let people choose such passwords. Nothing about the mail is wrong
then: failing it for good would lose every mail ticketd sends.
"""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from outbound.send import RETRY, SENT, send_raw
from tests.conftest import free_port
from tests.sink import Sink, _Handler, customer_mail
from ticketd.settings import OutboundSettings

# The sinks take AUTH without TLS, as a smarthost on the same host may.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

RAW = customer_mail(sender="support@example.com").as_bytes()
ACCOUNT = ("jürgen@firma.example", "Grüße-2024")


class _LoginOnlySink(Sink):
    """A smarthost that offers AUTH LOGIN and not PLAIN, as some Exchange servers do."""

    def start(self) -> "_LoginOnlySink":
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      authenticator=self._authenticate, auth_required=True,
                                      auth_require_tls=False, auth_exclude_mechanism=["PLAIN"])
        self._controller.start()
        return self


@pytest.fixture(params=[Sink, _LoginOnlySink], ids=["plain", "login"])
def auth_sink(request):
    sink = request.param(free_port(), credentials=ACCOUNT).start()
    yield sink
    sink.stop()


def _settings(sink, username: str, password: str) -> OutboundSettings:
    return OutboundSettings(host="127.0.0.1", port=sink.port, username=username, password=password,
                            timeout_seconds=5)


def test_a_utf8_user_name_and_password_log_in_and_the_mail_is_sent(auth_sink):
    result = send_raw(_settings(auth_sink, *ACCOUNT), "support@example.com", "cust@example.org", RAW)
    assert result.outcome == SENT, result.reply
    assert auth_sink.logins == [ACCOUNT[0]] and len(auth_sink.messages) == 1


def test_a_wrong_utf8_password_waits_for_the_admins_fix(auth_sink):
    result = send_raw(_settings(auth_sink, ACCOUNT[0], "Grüße-2025"), "support@example.com", "cust@example.org", RAW)
    assert result.outcome == RETRY and result.reply.startswith("535"), result.reply
    assert auth_sink.messages == []
