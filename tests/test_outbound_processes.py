"""Mail out end to end with real processes: `ticketd run` alone, and with Redis and two `ticketd worker`s."""

from __future__ import annotations

import email.utils
import socket
import subprocess
import time

import pytest
from sqlalchemy import create_engine, select

from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.sink import customer_mail, wait_until
from ticketd.store.tables import messages, outbox

pytestmark = pytest.mark.redis

NO_AGENTS = "agents: []\nroutes: []\n"


class RedisServer:
    """A throwaway redis-server on its own port (never the machine's 6379), stoppable and restartable."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _config(tmp_path, db_url, sink, redis_url=None, rules=NO_AGENTS):
    extra = (f"outbound: {{host: 127.0.0.1, port: {sink.port}, retry_base_seconds: 0.05, max_attempts: 30, "
             f"timeout_seconds: 2}}\n")
    if redis_url:
        extra += f"redis_url: {redis_url}\n"
    return write_config(tmp_path, db_url, rules=rules, extra=extra)


def _smtp_port(config) -> int:
    import yaml

    return int(yaml.safe_load(config.read_text())["smtp"]["listen"].rsplit(":", 1)[1])


def _submit(port: int, msg) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(msg)


def _round_trip(config, db_url, sink, n: int) -> None:
    port = _smtp_port(config)
    for i in range(n):
        _submit(port, customer_mail(subject=f"Case {i}", sender=f"c{i}@example.org",
                                    message_id=f"<case{i}@client.example.org>"))
    got = sink.wait_for(n, timeout=20)
    got = sink.settle(1.5)
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(f"c{i}@example.org" for i in range(n))  # each once
    for m in got:
        msg = m.message
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["X-Auto-Response-Suppress"] == "DR, RN, NRN, OOF, AutoReply"
        assert msg["Subject"].startswith("[#")
    # The first customer answers the acknowledgement from a mail client.
    ack = next(m.message for m in got if m.rcpt_tos == ["c0@example.org"])
    reply = customer_mail(subject="Re: " + ack["Subject"], body="Thanks, more info.\n", sender="c0@example.org",
                          message_id="<reply0@client.example.org>", In_Reply_To=ack["Message-ID"],
                          References=f"<case0@client.example.org> {ack['Message-ID']}")
    del reply["To"]
    reply["To"] = email.utils.parseaddr(ack["Reply-To"])[1]
    _submit(port, reply)
    engine = create_engine(db_url)
    try:
        def threaded():
            with engine.connect() as conn:
                return conn.execute(select(messages.c.ticket_id, messages.c.matched_by).where(
                    messages.c.message_id.in_(["case0@client.example.org", "reply0@client.example.org"]))).all()
        rows = wait_until(lambda: len(threaded()) == 2 and threaded(), timeout=10)
        assert len({t for t, _ in rows}) == 1 and "reply_address" in {m for _, m in rows}
        with engine.connect() as conn:
            states = conn.execute(select(outbox.c.state)).scalars().all()
        assert states == ["sent"] * n
    finally:
        engine.dispose()
    assert len(sink.settle(1.0)) == n   # the reply got no second acknowledgement


def test_embedded_run_sends_each_ack_once_and_reply_threads(tmp_path, sqlite_url, sink, processes):
    config = _config(tmp_path, sqlite_url, sink)
    processes.append(DaemonProcess(config, "run").start())
    _round_trip(config, sqlite_url, sink, 3)


def test_redis_two_workers_send_each_ack_once_and_reply_threads(tmp_path, postgres_url, sink, redis_server,
                                                                processes):
    config = _config(tmp_path, postgres_url, sink, redis_server.url)
    processes.append(DaemonProcess(config, "worker").start())
    processes.append(DaemonProcess(config, "worker").start())
    processes.append(DaemonProcess(config, "run").start())
    _round_trip(config, postgres_url, sink, 6)


def test_redis_down_while_mail_arrives_then_every_ack_arrives_once(tmp_path, sqlite_url, sink, redis_server,
                                                                   processes):
    config = _config(tmp_path, sqlite_url, sink, redis_server.url)
    processes.append(DaemonProcess(config, "worker").start())
    processes.append(DaemonProcess(config, "run").start())
    port = _smtp_port(config)
    redis_server.stop()
    for i in range(4):
        _submit(port, customer_mail(subject=f"Outage {i}", sender=f"o{i}@example.org"))
    time.sleep(2)
    assert sink.messages == []          # nothing can move without the transport
    redis_server.start()                # empty: whatever was in Redis is gone too
    sink.wait_for(4, timeout=30)
    got = sink.settle(1.5)
    assert sorted(m.rcpt_tos[0] for m in got) == [f"o{i}@example.org" for i in range(4)]


def test_a_worker_follows_rules_yaml_and_sighup_as_run_does(tmp_path, sqlite_url, sink, redis_server, processes):
    """The rule worker assigns: with the old rules it kept giving tickets to agents the new file set away."""
    import signal

    from tests.test_assignment import THREE

    config = _config(tmp_path, sqlite_url, sink, redis_server.url, rules=THREE)
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    (tmp_path / "rules.yaml").write_text(THREE.replace("name: A2,", "name: A2, away: true,"))
    wait_until(lambda: "rules reloaded" in worker.output(), timeout=10)
    worker.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: rules" in worker.output(), timeout=10)
    assert worker.proc.poll() is None          # SIGHUP reloads, as for `ticketd run`; it ended the worker
    assert worker.terminate() == 0
