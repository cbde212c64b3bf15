"""`ticketd run` tells a service manager (NOTIFY_SOCKET, systemd's Type=notify) when it takes mail and when it stops."""

from __future__ import annotations

import smtplib
import socket

import pytest

from tests.daemon import DaemonProcess

READY_WITHIN = 30


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path, monkeypatch):
    """A datagram socket standing in for the service manager's, named in NOTIFY_SOCKET as systemd names it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify")
        sock.bind(name)
    else:
        name = f"@ticketd-notify-{id(sock)}"
        sock.bind("\0" + name[1:])
    sock.settimeout(READY_WITHIN)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    yield sock
    sock.close()


def test_ready_once_the_receiver_listens_and_stopping_at_sigterm(make_app, tmp_path, notify_socket, processes):
    app = make_app(f"sqlite:///{tmp_path}/ticketd.db")
    run = DaemonProcess(tmp_path / "ticketd.yaml", "run")
    processes.append(run)
    run.start(timeout=READY_WITHIN)
    assert notify_socket.recv(4096) == b"READY=1"
    with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1], timeout=5) as client:
        assert client.noop()[0] == 250   # ready meant taking mail
    assert run.terminate() == 0
    assert notify_socket.recv(4096) == b"STOPPING=1"


@pytest.mark.redis
def test_worker_ready_once_it_takes_jobs_and_stopping_at_sigterm(make_app, tmp_path, notify_socket, redis_server,
                                                                 processes):
    make_app(f"sqlite:///{tmp_path}/ticketd.db", extra=f"redis_url: {redis_server.url}\n")
    worker = DaemonProcess(tmp_path / "ticketd.yaml", "worker")
    processes.append(worker)
    worker.start(timeout=READY_WITHIN)
    assert notify_socket.recv(4096) == b"READY=1"
    assert worker.terminate() == 0
    assert notify_socket.recv(4096) == b"STOPPING=1"
