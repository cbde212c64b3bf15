"""A sweep or processing pass failing round after round: the database down is one warning, a bug one traceback."""

from __future__ import annotations

import logging
import time

from tests.tcpproxy import TcpProxy
from ticketd.daemon import Processor
from ticketd.repeating_failures import RepeatingFailures
from workers.sweeps import sweep_once


def _behind_a_proxy(make_app, postgres_url, **kw):
    """An app whose PostgreSQL is reached through a proxy the test can cut."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port)).start()
    return make_app(postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}"), **kw), proxy


def test_a_database_down_for_many_sweeps_is_one_warning_and_one_line_when_it_answers(make_app, postgres_url,
                                                                                      caplog):
    app, proxy = _behind_a_proxy(make_app, postgres_url)
    try:
        sweep_once(app)        # the database answers: nothing to log
        proxy.cut()
        app.engine.dispose()   # pooled connections die with the proxy
        caplog.set_level(logging.INFO, logger="ticketd.sweeps")
        for _ in range(3):
            sweep_once(app)
        proxy.restore()
        sweep_once(app)
        sweep_once(app)
    finally:
        proxy.cut()
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ticketd.sweeps"]
    # Every step that reads the database fails every round; the first says so, without a traceback.
    assert [level for level, _ in told] == ["WARNING", "INFO"], told
    assert "failed; trying again next round: the database is out of reach (" in told[0][1], told
    assert "Connection refused" in told[0][1], told
    assert told[1][1].startswith("the database answers again after "), told
    assert not [r for r in caplog.records if r.exc_info]


def test_processing_with_the_database_down_is_one_warning(make_app, postgres_url, caplog):
    app, proxy = _behind_a_proxy(make_app, postgres_url, extra="prepare_processes: 0\n")
    proxy.cut()
    app.engine.dispose()
    caplog.set_level(logging.INFO, logger="ticketd.daemon")
    processor = Processor(app)
    processor.start()
    try:
        time.sleep(3)   # a pass, then a second's pause, at every wake-up: three passes or more
        proxy.restore()
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if "answers again" in r.getMessage()] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        processor.stop()
        proxy.cut()
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ticketd.daemon"]
    assert [level for level, _ in told] == ["WARNING", "INFO"], told
    assert told[0][1].startswith("processing pass failed; retrying: the database is out of reach ("), told
    assert told[1][1].startswith("the database answers again after "), told


def test_a_failure_that_is_no_outage_keeps_its_traceback_once(caplog):
    failures = RepeatingFailures(logging.getLogger("tests.repeating"))
    caplog.set_level(logging.INFO, logger="tests.repeating")
    for _ in range(2):
        try:
            raise KeyError("row 7")
        except KeyError:
            failures.failed("step %s failed", "x")
    failures.worked()   # no outage to end: nothing to say
    assert [(r.levelname, bool(r.exc_info)) for r in caplog.records] == [("ERROR", True), ("ERROR", False)]
    assert caplog.records[1].getMessage() == "step x failed (again: KeyError: 'row 7')"
