"""`ticketd worker` while Redis is down: one WARNING when its consumers lose Redis, one INFO when they take jobs again.

dramatiq itself logs a CRITICAL line per queue every 3 s (its consumer
restart delay) for as long as Redis is away, and an INFO "Restarting
consumer" after each: a night's outage buried the log. The Redis here is a
private redis-server the test stops and starts again.
"""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import exc

from tests.conftest import write_config
from tests.daemon import DaemonProcess
from tests.waiting import eventually
from workers.broker_health import ConsumerHealth
from workers.database_health import DatabaseHealth
from workers.runtime import DramatiqConsumerNoise


def _lines(log: str, level: str, logger: str = "ticketd.workers") -> list[str]:
    return [line for line in log.splitlines() if f" {level} {logger}:" in line]


@pytest.mark.redis
def test_a_redis_outage_is_one_warning_and_one_info_in_the_worker_log(tmp_path, redis_server, processes):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"redis_url: {redis_server.url}\n")
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    time.sleep(0.5)

    redis_server.stop()
    # Long enough for dramatiq to retry each of its two queues (work and delay) twice or more.
    time.sleep(8)
    redis_server.start()
    eventually(lambda: _lines(worker.output(), "INFO"), timeout=15)
    time.sleep(1)

    log = worker.output()
    assert "Consumer encountered a connection error" not in log, log
    assert "Restarting consumer" not in log and "Traceback" not in log and " CRITICAL " not in log, log
    [warning] = _lines(log, "WARNING")
    # The cause as the consumer met it: a refused connect, or the shutdown closing (or resetting, as the
    # kernel may answer a read on a socket the server dropped) the one it held.
    assert f"Redis at {redis_server.url}" in warning, warning
    assert any(cause in warning for cause in ("Connection refused)", "(Connection closed by server)",
                                              "Connection reset by peer")), warning
    assert "takes no jobs" in warning, warning
    [info] = _lines(log, "INFO")
    assert f"Redis at {redis_server.url}" in info and "again" in info, info
    assert log.index(warning) < log.index(info)


@pytest.mark.redis
def test_a_redis_refusing_writes_is_one_warning_in_the_worker_log_and_critical_in_status(
        tmp_path, redis_server, processes):
    """Over `maxmemory` with `noeviction`, Redis answers PING and reads and refuses every write: status said
    all was well, and the worker logged dramatiq's CRITICAL traceback every 3 s."""
    import json

    import redis

    from tests.cli import run_cli

    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"redis_url: {redis_server.url}\n")
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    admin = redis.Redis.from_url(redis_server.url)
    time.sleep(0.5)

    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        time.sleep(8)   # dramatiq retries each of its two queues twice or more
        done = run_cli(config, "status", "--json")
        queue = json.loads(done.stdout)["queue"]
        assert queue["reachable"] is True and "used memory > 'maxmemory'" in queue["write_error"], queue
        [problem] = [p for p in json.loads(done.stdout)["problems"] if p["part"] == "queue"]
        assert problem["state"] == "critical", problem
        assert "refuses writes: command not allowed when used memory" in problem["text"], problem
        assert done.returncode == 2
        text = run_cli(config, "status").stdout
        assert "answers but REFUSES WRITES (command not allowed when used memory" in text, text
    finally:
        admin.config_set("maxmemory", 0)
    eventually(lambda: _lines(worker.output(), "INFO"), timeout=15)
    done = run_cli(config, "status", "--json")
    assert json.loads(done.stdout)["queue"]["write_error"] is None

    log = worker.output()
    assert "Traceback" not in log and " CRITICAL " not in log and "Restarting consumer" not in log, log
    [warning] = _lines(log, "WARNING")
    assert "takes no jobs" in warning and "refuses them (command not allowed when used memory" in warning, warning
    [info] = _lines(log, "INFO")
    assert "again" in info and log.index(warning) < log.index(info), info
    admin.close()


@pytest.mark.redis
def test_a_job_in_hand_when_redis_goes_adds_no_line_of_its_own(tmp_path, redis_server, sink, processes):
    """The worker sends a mail while Redis stops: dramatiq retried its ack every 5 s with a warning each time."""
    import smtplib

    from sqlalchemy import create_engine, text

    from tests.conftest import free_port
    from tests.sink import customer_mail

    smtp_port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", smtp_port=smtp_port, rules="agents: []\n",
                          extra=(f"redis_url: {redis_server.url}\n"
                                 f"outbound: {{host: 127.0.0.1, port: {sink.port}, timeout_seconds: 10}}\n"))
    processes.append(DaemonProcess(config, "run").start())
    worker = DaemonProcess(config, "worker").start()
    processes.append(worker)
    sink.data_delay = 3.0   # the acknowledgement is in the worker's hands for 3 s
    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        client.send_message(customer_mail())
    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    with engine.connect() as conn:   # claimed: the worker is in the smarthost's DATA
        eventually(lambda: conn.execute(text("SELECT count(*) FROM outbox WHERE state = 'sending'")).scalar(),
                   timeout=20)
    engine.dispose()
    redis_server.stop()
    sink.wait_for(1, timeout=10)        # sent; its ack now finds no Redis
    time.sleep(12)                      # two of dramatiq's 5 s retries of the ack, or more
    redis_server.start()
    eventually(lambda: _lines(worker.output(), "INFO"), timeout=20)

    log = worker.output()
    assert "Failed to post_process_message" not in log and "Traceback" not in log, log
    assert " CRITICAL " not in log and "Restarting consumer" not in log, log
    [warning] = _lines(log, "WARNING")
    assert "takes no jobs" in warning and "does not answer" in warning, warning
    [info] = _lines(log, "INFO")
    assert "again" in info and log.index(warning) < log.index(info), info
    assert len(sink.settle(1.0)) == 1


def test_the_outage_is_told_when_the_first_queue_loses_the_broker_and_when_the_last_is_back():
    now = [10.0]
    health = ConsumerHealth(clock=lambda: now[0])
    assert health.back("q") is None and not health.is_down("q")     # up: nothing to tell
    assert health.lost("q") is True                                  # the outage begins: told
    assert health.lost("q") is False and health.lost("q.DQ") is False   # each retry, the other queue: not
    assert health.is_down("q") and health.is_down("q.DQ")
    now[0] += 7
    assert health.back("q.DQ") is None                               # one queue back, the other still down
    assert health.lost("q.DQ") is False                              # and losing it again is the same outage
    assert health.back("q") is None and health.back("q.DQ") == 7.0   # the last one back ends it
    assert health.back("q.DQ") is None
    assert health.lost("q") is True                                  # a later outage is told again


def test_dramatiq_lines_other_than_its_consumers_connection_errors_pass_untouched():
    health = ConsumerHealth()
    logger = logging.getLogger("tests.worker_redis_log.consumer")
    database = DatabaseHealth()
    noise = DramatiqConsumerNoise("q", health, database)

    def passes(level: int, msg: str, *args) -> bool:
        return noise.filter(logger.makeRecord(logger.name, level, __file__, 1, msg, args, None))

    connection_error = "Consumer encountered a connection error: %s"
    assert passes(logging.CRITICAL, connection_error, "refused")         # nobody told it yet: dramatiq's own line
    assert passes(logging.INFO, "Restarting consumer in %0.2f seconds.", 3.0)
    health.lost("q")
    assert not passes(logging.CRITICAL, connection_error, "refused")     # told once by ticketd.workers
    assert not passes(logging.INFO, "Restarting consumer in %0.2f seconds.", 3.0)
    settle_retry = ("Failed to post_process_message(%s) due to a connection error: %s\nThe operation will be "
                    "retried in %s seconds until the connection recovers.")
    assert not passes(logging.WARNING, settle_retry, "send_mail(1)", "refused", 5)
    assert passes(logging.CRITICAL, "Consumer encountered an unexpected error.")
    assert passes(logging.ERROR, "Failed to enqueue message")


def test_a_consumer_paused_while_the_database_is_away_does_not_say_it_restarts():
    database = DatabaseHealth()
    logger = logging.getLogger("tests.worker_redis_log.consumer")
    noise = DramatiqConsumerNoise("q", ConsumerHealth(), database)

    def passes(msg: str, *args) -> bool:
        return noise.filter(logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None))

    restarting = "Restarting consumer in %0.2f seconds."
    assert passes(restarting, 3.0)
    database.failed(exc.OperationalError("SELECT 1", {}, Exception("refused")))
    assert not passes(restarting, 3.0)
    assert passes("Consumer encountered an unexpected error.")
    database.worked()
    assert passes(restarting, 3.0)
