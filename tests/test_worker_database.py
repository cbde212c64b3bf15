"""A `ticketd worker` that reaches Redis but not the database: told once in its log, named by `ticketd status`.

It took every job and failed it with a traceback (thousands of lines a
minute) while its heartbeat kept status green. The database is cut at the
protocol: the worker's `database_url` points at a TCP proxy in front of
the test PostgreSQL, which refuses connections while cut; `ticketd run`
reaches the database directly.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
from urllib.parse import urlsplit

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import exc

from tests.cli import run_cli
from tests.conftest import REDIS_URL, free_port, write_config
from tests.daemon import DaemonProcess
from tests.redis_space import queued, redis_namespace
from tests.sink import customer_mail
from tests.tcpproxy import TcpProxy
from tests.waiting import eventually
from ticketd import health
from ticketd.store.db import unreachable
from workers.database_health import DatabaseHealth
from workers.database_pause import PauseWhileAway

NO_AGENTS = "agents: []\nroutes: []\n"


def _status(config) -> dict:
    done = run_cli(config, "status", "--json")
    desk = json.loads(done.stdout)
    assert done.returncode == {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[desk["health"]], done.stderr
    return desk


def _lines(output: str, level: str) -> list[str]:
    return [line for line in output.splitlines() if f" {level} ticketd.workers:" in line]


@pytest.mark.redis
def test_a_worker_cut_off_from_the_database_says_so_once_status_names_it_and_mail_goes_when_it_is_back(
        tmp_path, sink, postgres_url, processes):
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname, target.port or 5432).start()
    proxied = postgres_url.replace(target.netloc, f"{target.netloc.rpartition('@')[0]}@127.0.0.1:{proxy.port}")
    smtp_port = free_port()
    with redis_namespace("nodb") as space:
        shared = (f"redis_url: {REDIS_URL}\nredis_namespace: {space}\ndata_dir: {tmp_path / 'var'}\n"
                  f"outbound: {{host: 127.0.0.1, port: {sink.port}, timeout_seconds: 2}}\n")
        (tmp_path / "daemon").mkdir()
        (tmp_path / "worker").mkdir()
        config = write_config(tmp_path / "daemon", postgres_url, rules=NO_AGENTS, smtp_port=smtp_port, extra=shared)
        worker_config = write_config(tmp_path / "worker", proxied, rules=NO_AGENTS, extra=shared)
        processes.append(DaemonProcess(config, "run").start())
        worker = DaemonProcess(worker_config, "worker").start()
        processes.append(worker)

        def mail(n: int) -> None:
            with smtplib.SMTP("127.0.0.1", smtp_port) as client:
                client.send_message(customer_mail(subject=f"Case {n}", sender=f"c{n}@example.org"))

        mail(0)
        sink.wait_for(1, timeout=30)                     # the worker sends the acknowledgement
        eventually(lambda: _status(config)["queue"]["workers"] == 1, timeout=20)

        proxy.cut()
        for n in (1, 2):
            mail(n)
        desk = eventually(lambda: (d := _status(config))["queue"]["workers_without_database"] and d, timeout=30)
        [troubled] = desk["queue"]["workers_without_database"]
        # The driver's words: a pooled connection cut ("server closed the connection"), or a new one refused.
        assert "connection" in troubled["error"].lower(), troubled
        [problem] = [p for p in desk["problems"] if p["part"] == "workers"]
        assert problem["state"] == "critical", problem
        assert problem["text"].startswith(f"`ticketd worker` {troubled['worker']} cannot reach the database for ")
        assert problem["text"].endswith(": no worker does any job, no mail is sent"), problem
        text = run_cli(config, "status").stdout
        assert "workers  1 alive (`ticketd worker` processes beating within 60 s), 1 of them without the " \
               "database" in text.splitlines(), text
        # Paused, the worker takes no job: the mails' jobs wait in Redis for a worker that reaches the
        # database (it took each the sweep enqueued again, and gave it up, while others waited).
        eventually(lambda: _status(config)["queue"]["waiting"] >= 2, timeout=30)
        for _ in range(3):
            time.sleep(1)
            assert _status(config)["queue"]["waiting"] >= 2
        assert len(sink.messages) == 1
        # An admin's command that queues mail does not say a worker sends it now.
        closed = run_cli(config, "tickets", "close", "1")
        assert closed.returncode == 0, closed.stderr
        assert "no running `ticketd worker` reaches the database (`ticketd status` names them): the mail waits " \
               "until one does" in closed.stdout, closed.stdout

        proxy.restore()
        got = sink.wait_for(4, timeout=60)
        assert sorted(m.rcpt_tos[0] for m in sink.settle(1.0)) == \
            ["c0@example.org"] + [f"c{n}@example.org" for n in range(3)]   # c0's closing mail too
        eventually(lambda: not _status(config)["queue"]["workers_without_database"], timeout=20)
        log = worker.output()
        assert "Traceback" not in log and " ERROR " not in log, log
        assert "Restarting consumer" not in log, log   # paused, not restarting
        [warning] = _lines(log, "WARNING")
        assert "cannot reach the database (" in warning and "connection" in warning.lower(), warning
        assert "takes no jobs until it reaches it again (it tries every 5 s" in warning, warning
        [back] = _lines(log, "INFO")
        assert "reaches the database again after" in back and back.endswith(" s and takes jobs again"), back
        assert log.index(warning) < log.index(back) and got
    proxy.cut()


def _operational(text: str) -> exc.OperationalError:
    return exc.OperationalError("SELECT 1", {}, Exception(text))


def test_a_database_out_of_reach_ends_the_job_quietly_and_is_told_once(caplog):
    now = [50.0]
    database = DatabaseHealth(clock=lambda: now[0])
    changes = []
    database.listen(lambda: changes.append(database.trouble()))
    caplog.set_level(logging.INFO, logger="ticketd.workers")
    for n in range(3):
        with database.job(f"job {n}"):
            raise _operational(f"connection refused ({n})")
        now[0] += 2
    assert database.trouble() == ("connection refused (2)", 6.0)   # the last error, since the first job
    [warning] = caplog.records
    assert warning.levelname == "WARNING" and "connection refused (0)" in warning.getMessage()
    assert "job 0" in warning.getMessage()
    with database.job("job 3"):
        pass
    assert database.trouble() is None
    assert [r.getMessage() for r in caplog.records[1:]] == ["the worker reaches the database again after 6 s"]
    assert changes == [("connection refused (0)", 0.0), None]   # the heartbeat beats at each change only


def test_a_job_failing_otherwise_keeps_its_error():
    database = DatabaseHealth()
    with pytest.raises(ZeroDivisionError), database.job("job"):
        raise ZeroDivisionError
    with pytest.raises(exc.IntegrityError), database.job("job"):
        raise exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert database.trouble() is None


@pytest.mark.parametrize("error, out_of_reach", [
    (_operational("could not connect to server"), True),
    (exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
    (exc.TimeoutError("QueuePool limit reached"), True),
    (exc.DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True), True),
    (exc.IntegrityError("INSERT", {}, Exception("duplicate")), False),
    (exc.ProgrammingError("SELECT", {}, Exception("no such column")), False),
    (KeyError("x"), False),
])
def test_what_counts_as_the_database_out_of_reach(error, out_of_reach):
    assert unreachable(error) is out_of_reach


@pytest.mark.parametrize("troubled, state, ending", [
    (1, health.WARNING, ": it takes no jobs, the other workers do them"),
    (2, health.CRITICAL, ": no worker does any job, no mail is sent"),
])
def test_status_weighs_workers_without_the_database_against_the_workers_alive(troubled, state, ending):
    queue = {"backend": "redis", "reachable": True, "waiting": 0, "workers": 2, "last_beat_seconds_ago": 1.0,
             "workers_without_database": [{"worker": f"h{n}:1:ab", "error": "refused", "seconds": 90.0 - n}
                                          for n in range(troubled)]}
    desk = {"daemon": {"running": True, "up_seconds": 600.0}, "queue": queue, "imap": []}
    verdict = health.assess(desk)
    assert verdict.state == state
    [problem] = verdict.problems
    assert problem["text"].endswith(ending), problem
    assert "cannot reach the database for 90 s (refused)" in problem["text"], problem   # the longest outage


@pytest.mark.redis
def test_a_paused_worker_hands_back_the_jobs_it_took_ahead_and_does_them_once_the_probe_gets_through():
    with redis_namespace("pause") as space:
        broker = RedisBroker(url=REDIS_URL, namespace=space)
        begun, release, done = threading.Event(), threading.Event(), []

        def job(n: int) -> None:
            if n == 0:
                begun.set()
                release.wait(10)
            done.append(n)

        actor = dramatiq.actor(job, broker=broker, queue_name="q", max_retries=0)
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        database, reachable = DatabaseHealth(), threading.Event()

        def probe() -> None:
            if not reachable.is_set():
                raise _operational("connection refused")

        pause = PauseWhileAway(worker, database, probe, every=0.1)
        worker.start()
        pause.start()
        try:
            for n in range(4):
                actor.send(n)
            assert begun.wait(10)
            assert eventually(lambda: worker.work_queue.qsize() >= 1), "dramatiq fetched no job ahead"
            with database.job("another job"):
                raise _operational("connection refused")
            # The pause waits for the job in hand; released before the pause began, the thread took the next.
            assert eventually(lambda: all(thread.paused for thread in worker.workers))
            release.set()
            assert eventually(lambda: pause.paused and queued(space, "q") == 3), queued(space, "q")
            time.sleep(0.5)
            assert done == [0] and queued(space, "q") == 3  # paused: none taken again, the probe failing
            assert database.trouble()[0] == "connection refused"
            reachable.set()
            assert eventually(lambda: sorted(done) == [0, 1, 2, 3]), done
            assert not pause.paused and database.trouble() is None
        finally:
            pause.stop()
            worker.stop()
            broker.close()
