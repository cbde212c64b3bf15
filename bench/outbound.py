"""Outbound benchmark: delivery throughput to a local sink, and 250-to-acknowledgement latency under load.

    .venv/bin/python bench/outbound.py throughput [--db URL] [--count 2000]
    .venv/bin/python bench/outbound.py latency [--db URL] [--rate 50] [--seconds 20] [--workers 0|N]

throughput: N outbox rows are queued first (the pipeline, no workers), then
delivered by (a) the embedded in-process workers with 1 and 8 threads and
(b) 1 and 3 `ticketd worker` processes on a throwaway Redis; mails/s is N
over the time from the first enqueue to the last mail at the sink.
latency: `ticketd run` (embedded, or --workers N `ticketd worker`s on Redis)
takes customer mail at a steady rate over SMTP; for each mail, the time from
the customer's 250 to its acknowledgement reaching the sink; p50/p99.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, write_config  # noqa: E402
from tests.daemon import DaemonProcess  # noqa: E402
from tests.sink import Sink, customer_mail  # noqa: E402
from tests.test_outbound_processes import RedisServer  # noqa: E402

NO_AGENTS = "agents: []\nroutes: []\n"


def _config(tmp: Path, db: str | None, sink: Sink, redis_url: str | None = None) -> Path:
    db = db or f"sqlite:///{tmp}/bench.db"
    extra = f"outbound: {{host: 127.0.0.1, port: {sink.port}, timeout_seconds: 10}}\nlog_level: WARNING\n"
    if redis_url:
        extra += f"redis_url: {redis_url}\n"
    return write_config(tmp, db, rules=NO_AGENTS, extra=extra)


_made: list[tuple[str, str]] = []


def _fresh_db(db: str | None, tmp: Path) -> str | None:
    if not db or not db.startswith("postgresql"):
        return None
    import uuid

    import sqlalchemy

    name = "ticketd_bench_out_" + uuid.uuid4().hex[:8]
    admin = sqlalchemy.create_engine(db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    _made.append((db, name))
    return db.rsplit("/", 1)[0] + "/" + name


def _drop_made() -> None:
    import sqlalchemy

    for admin_url, name in _made:
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def _pcts(values: list[float]) -> str:
    q = statistics.quantiles(sorted(values), n=100)
    return f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms"


def _breakdown(db_url: str) -> str:
    """Where the time went, from the database: waiting for processing, and outbox to smarthost."""
    import sqlalchemy

    from ticketd.store.tables import outbox, raw_mail

    engine = sqlalchemy.create_engine(db_url)
    with engine.connect() as conn:
        processing = [(p - r).total_seconds() for r, p in conn.execute(
            sqlalchemy.select(raw_mail.c.received_at, raw_mail.c.processed_at))]
        sending = [(s - c).total_seconds() for c, s in conn.execute(
            sqlalchemy.select(outbox.c.created_at, outbox.c.sent_at))]
    engine.dispose()
    return f"  of which stored -> processed: {_pcts(processing)}; outbox row -> sent: {_pcts(sending)}"


def _queue_rows(app, count: int) -> list[int]:
    """Run `count` customer mails through the pipeline with no workers: `count` pending acks."""
    from ingest.parse import dedupe_key
    from ticketd.pipeline import drain
    from ticketd.store.inbox import store_raw
    from ticketd.store.tables import outbox

    for i in range(count):
        raw = customer_mail(subject=f"Bench {i}", sender=f"b{i}@example.org").as_bytes()
        key, mid = dedupe_key(raw)
        store_raw(app.engine, raw, source="cli", dedupe_key=key, message_id=mid)
    while drain(app):
        pass
    from sqlalchemy import select

    with app.engine.connect() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.state == "pending")).scalars().all()


def throughput(db: str | None, count: int) -> None:
    from ticketd.app import build_app
    from ticketd.settings import load_settings
    from workers.runtime import WorkerPool, bind, make_broker

    for label, threads, processes in (("embedded, 1 thread", 1, 0), ("embedded, 8 threads", 8, 0),
                                      ("redis, 1 worker process (4 threads)", 4, 1),
                                      ("redis, 3 worker processes (4 threads each)", 4, 3)):
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            sink = Sink(free_port()).start()
            redis = RedisServer(free_port()).start() if processes else None
            config = _config(tmp, _fresh_db(db, tmp), sink, redis.url if redis else None)
            app = build_app(load_settings(config, environ={}))
            ids = _queue_rows(app, count)
            workers = []
            if processes:
                broker = make_broker(app)
                actors = bind(app, broker)
                workers = [DaemonProcess(config, "worker").start() for _ in range(processes)]
                start = time.monotonic()
                for i in ids:
                    actors["send_mail"].send(i)
            else:
                # In-process: the StubBroker's worker threads, as `ticketd run` has them.
                broker = make_broker(app)
                actors = bind(app, broker)
                pool = WorkerPool(broker, threads)
                pool.start()
                start = time.monotonic()
                for i in ids:
                    actors["send_mail"].send(i)
            got = sink.wait_for(len(ids), timeout=600)
            elapsed = max(m.at for m in got) - start
            print(f"{label}: {len(got)} mails in {elapsed:.2f}s = {len(got) / elapsed:.0f} mails/s", flush=True)
            if processes:
                for w in workers:
                    w.stop()
                redis.stop()
            else:
                pool.stop()
            sink.stop()
            app.engine.dispose()


def latency(db: str | None, rate: float, seconds: float, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sink = Sink(free_port()).start()
        redis = RedisServer(free_port()).start() if workers else None
        db_url = _fresh_db(db, tmp) or f"sqlite:///{tmp}/bench.db"
        config = _config(tmp, db_url, sink, redis.url if redis else None)
        procs = [DaemonProcess(config, "worker").start() for _ in range(workers)]
        procs.append(DaemonProcess(config, "run").start())
        import yaml

        port = int(yaml.safe_load(config.read_text())["smtp"]["listen"].rsplit(":", 1)[1])
        accepted: dict[str, float] = {}
        lock = threading.Lock()
        total = int(rate * seconds)
        start = time.monotonic()

        def client(offset: int, step: int) -> None:
            # Several clients, each with its own connection, keep the rate steady.
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for n in range(offset, total, step):
                    delay = start + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    mid = f"lat{n}@client.example.org"
                    smtp.send_message(customer_mail(subject=f"Latency {n}", sender=f"l{n}@example.org",
                                                    message_id=f"<{mid}>"))
                    with lock:
                        accepted[mid] = time.monotonic()

        clients = [threading.Thread(target=client, args=(i, 8)) for i in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        offered = total / (time.monotonic() - start)
        got = sink.wait_for(total, timeout=120)
        lat = sorted(m.at - accepted[m.message["In-Reply-To"].strip("<>")] for m in got)
        q = statistics.quantiles(lat, n=100)
        mode = f"redis, {workers} worker processes" if workers else "embedded"
        print(f"latency ({mode}): {len(got)}/{total} acks at {offered:.1f} mails/s offered; "
              f"250 -> sink p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms",
              flush=True)
        print(_breakdown(db_url), flush=True)
        for p in procs:
            p.stop()
        if redis:
            redis.stop()
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["throughput", "latency"])
    parser.add_argument("--db", help="a PostgreSQL admin URL (a fresh database is made); default SQLite")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=0, help="0: embedded; N: N `ticketd worker`s on Redis")
    args = parser.parse_args()
    try:
        if args.what == "throughput":
            throughput(args.db, args.count)
        else:
            latency(args.db, args.rate, args.seconds, args.workers)
    finally:
        _drop_made()


if __name__ == "__main__":
    main()
