"""A sweep or processing pass failing the same way round after round (the database down) logs its traceback once."""

from __future__ import annotations

import logging
import time

from tests.tcpproxy import TcpProxy
from ticketd.daemon import Processor
from workers.sweeps import STEPS, sweep_once


def _behind_a_proxy(make_app, postgres_url, **kw):
    """An app whose PostgreSQL is reached through a proxy the test can cut."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port)).start()
    return make_app(postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}"), **kw), proxy


def test_a_database_down_for_many_sweeps_logs_one_traceback(make_app, postgres_url, caplog):
    app, proxy = _behind_a_proxy(make_app, postgres_url)
    try:
        sweep_once(app)        # the database answers: nothing to log
        proxy.cut()
        app.engine.dispose()   # pooled connections die with the proxy
        caplog.set_level(logging.ERROR, logger="ticketd.sweeps")
        for _ in range(3):
            sweep_once(app)
    finally:
        proxy.cut()
    failures = [r for r in caplog.records if r.name == "ticketd.sweeps"]
    assert len(failures) >= 3 * (len(STEPS) - 1)   # every step that reads the database, every round, says so
    assert len([r for r in failures if r.exc_info]) == 1
    assert all("Connection refused" in r.getMessage() for r in failures if not r.exc_info)


def test_processing_with_the_database_down_logs_one_traceback(make_app, postgres_url, caplog):
    app, proxy = _behind_a_proxy(make_app, postgres_url, extra="prepare_processes: 0\n")
    proxy.cut()
    app.engine.dispose()
    caplog.set_level(logging.ERROR, logger="ticketd.daemon")
    processor = Processor(app)
    processor.start()
    try:
        deadline = time.monotonic() + 10
        while len([r for r in caplog.records if r.name == "ticketd.daemon"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)   # a pass, then a second's pause, at every wake-up
    finally:
        processor.stop()
    failures = [r for r in caplog.records if r.getMessage().startswith("processing pass failed; retrying")]
    assert len(failures) >= 3
    assert len([r for r in failures if r.exc_info]) == 1
