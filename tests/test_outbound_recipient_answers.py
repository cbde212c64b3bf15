"""A smarthost's answers about one mail over a connection that stays good, and answers that end the connection.

A refusal of one RCPT (550 unknown user, 450 greylisting or a recipient check
still pending) ends that mail's transaction, not the session (RFC 5321
section 4.1.1.5): the rest of the batch goes over the same connection. A 421
(RFC 5321 section 3.8) or a connection dropped mid-DATA ends it: the mail is
retried, the batch handed back, and the connection never used again.
"""

from __future__ import annotations

import socket
import threading

import pytest

from outbound.delivery import deliver
from tests.sink import customer_mail, outbox_rows, receive
from tests.test_outbound import NO_AGENTS, outbound_yaml
from tests.test_outbound_order import _queue, _reply

STANDARD = {"DATA": "354 go ahead", "DOT": "250 2.0.0 queued", "QUIT": "221 2.0.0 bye"}


def usual_answer(verb: str) -> str:
    """What a smarthost says to a command that goes well."""
    return STANDARD.get(verb, "250 2.0.0 ok")


class ScriptedSmarthost:
    """An SMTP server on a free port that answers each command by `answer(connection, mail, verb, line)`.

    `mail` counts MAIL commands on the connection; the verb "DOT" is the end
    of a mail's data. An answer of None closes the connection instead.
    `banner` None: the connection is taken and nothing is ever said.
    """

    def __init__(self, answer=None, *, banner: str | None = "220 mx.example.net ESMTP",
                 ehlo: tuple[str, ...] = ("250-mx.example.net", "250 8BITMIME")) -> None:
        self.answer = answer or (lambda connection, mail, verb, line: usual_answer(verb))
        self.banner, self.ehlo = banner, ehlo
        self.commands: list[tuple[int, str]] = []   # (connection number, command line)
        self.connections = 0
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        for sock in [self._listener, *self._open]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            self._dialogue(conn, conn.makefile("rb"), number)
        except OSError:
            pass
        finally:
            conn.close()

    def _dialogue(self, conn: socket.socket, lines, number: int) -> None:
        if self.banner is None:
            lines.read()   # until the client gives up
            return
        conn.sendall(self.banner.encode() + b"\r\n")
        mails = 0
        while line := lines.readline():
            command = line.decode("utf-8", "replace").strip()
            self.commands.append((number, command))
            verb = command.split(":")[0].split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                conn.sendall("".join(f"{x}\r\n" for x in self.ehlo).encode())
                continue
            mails += verb == "MAIL"
            reply = self.answer(number, mails, verb, command)
            if reply is None:
                return
            conn.sendall(reply.encode() + b"\r\n")
            if verb == "DATA" and reply.startswith("354"):
                while lines.readline() not in (b".\r\n", b""):
                    pass
                self.commands.append((number, "DOT"))
                reply = self.answer(number, mails, "DOT", "")
                if reply is None:
                    return
                conn.sendall(reply.encode() + b"\r\n")
            if verb == "QUIT":
                return


RECIPIENTS = ["first@example.org", "second@example.org", "third@example.org"]


@pytest.fixture
def smarthost():
    """Start a smarthost that says `reply` (None: closes the connection) to the command `when(connection, mail,
    verb, line)` picks, and the usual answer to the others; stopped after the test."""
    started: list[ScriptedSmarthost] = []

    def start(reply: str | None, when) -> ScriptedSmarthost:
        started.append(ScriptedSmarthost(lambda n, mail, verb, line: reply if when(n, mail, verb, line)
                                         else usual_answer(verb)))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _batch(make_app, sqlite_url, server: ScriptedSmarthost) -> tuple[object, list[int], list[tuple]]:
    """An app on `server` with one ticket, and three replies to three people queued: one delivery's batch."""
    app = make_app(sqlite_url, outbound_port=server.port, rules=NO_AGENTS,
                   extra=outbound_yaml(server.port, retry_base=30, timeout=2))
    receive(app, customer_mail())
    [ack] = outbox_rows(app)
    enqueued: list[tuple] = []
    app.enqueue = lambda name, args: enqueued.append(args)
    with_ack = server.answer
    server.answer = lambda *a: usual_answer(a[2])
    assert deliver(app, ack["id"]) == "sent"
    server.answer = with_ack
    ids = _queue(app, *(_reply(ack["ticket_id"], f"Words for {r}.", r) for r in RECIPIENTS))
    return app, ids, enqueued


def _rows(app, ids: list[int]) -> list[tuple]:
    by_id = {r["id"]: r for r in outbox_rows(app)}
    return [(by_id[i]["state"], by_id[i]["attempts"], (by_id[i]["last_error"] or "")[:3]) for i in ids]


def _connections_with_mail(server: ScriptedSmarthost, recipient: str) -> set[int]:
    return {n for n, line in server.commands if line.upper().startswith("RCPT") and recipient in line}


def test_an_unknown_recipient_fails_and_the_next_mail_goes_over_the_same_connection(make_app, sqlite_url, smarthost):
    server = smarthost("550 5.1.1 <second@example.org>: unknown user",
                       lambda n, mail, verb, line: verb == "RCPT" and "second@" in line)
    app, ids, enqueued = _batch(make_app, sqlite_url, server)
    assert deliver(app, ids[0]) == "sent"
    assert _rows(app, ids) == [("sent", 1, ""), ("failed", 1, "550"), ("sent", 1, "")]
    # One connection for the ack and the whole batch: the refusal did not end the session.
    assert server.connections == 1
    assert _connections_with_mail(server, "third@") == {1}


def test_a_greylisted_recipient_waits_and_the_rest_of_the_batch_goes_on(make_app, sqlite_url, smarthost):
    server = smarthost("450 4.2.0 <first@example.org>: greylisted, try later",
                       lambda n, mail, verb, line: verb == "RCPT" and "first@" in line)
    app, ids, enqueued = _batch(make_app, sqlite_url, server)
    assert deliver(app, ids[0]) == "pending"
    # The greylisted mail waits its backoff; the others were not handed back to wait for new jobs.
    assert _rows(app, ids) == [("pending", 1, "450"), ("sent", 1, ""), ("sent", 1, "")]
    assert server.connections == 1
    [due] = [r["next_attempt_at"] for r in outbox_rows(app) if r["id"] == ids[0]]
    [claimed] = [r for r in outbox_rows(app) if r["id"] == ids[1]]
    assert (due - claimed["sent_at"]).total_seconds() > 25   # retry_base_seconds 30, not at once


def test_a_421_to_the_second_mail_retries_it_hands_back_the_rest_and_drops_the_connection(make_app, sqlite_url,
                                                                                          smarthost):
    server = smarthost("421 4.3.2 shutting down", lambda n, mail, verb, line: (n, mail, verb) == (1, 3, "MAIL"))
    app, ids, enqueued = _batch(make_app, sqlite_url, server)
    assert deliver(app, ids[0]) == "sent"
    assert _rows(app, ids) == [("sent", 1, ""), ("pending", 1, "421"), ("pending", 0, "")]
    assert enqueued == [(ids[2],)]   # handed back untried, with a job of its own
    assert deliver(app, ids[2]) == "sent"
    assert _connections_with_mail(server, "third@") == {2}   # a new connection, not the one that said 421


@pytest.mark.parametrize("drop", ["DATA", "DOT"])
def test_a_connection_dropped_mid_data_or_after_the_dot_is_a_retry(make_app, sqlite_url, smarthost, drop):
    server = smarthost(None, lambda n, mail, verb, line: (n, mail, verb) == (1, 3, drop))
    app, ids, enqueued = _batch(make_app, sqlite_url, server)
    assert deliver(app, ids[0]) == "sent"
    assert _rows(app, ids) == [("sent", 1, ""), ("pending", 1, "SMT"), ("pending", 0, "")]
    [second] = [r for r in outbox_rows(app) if r["id"] == ids[1]]
    assert "closed" in second["last_error"]     # SMTPServerDisconnected: Connection unexpectedly closed
    assert deliver(app, ids[1]) is None          # waits its backoff: not sent again at once
    assert deliver(app, ids[2]) == "sent" and server.connections == 2
