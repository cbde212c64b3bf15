"""Processing benchmark: stored raw mails into tickets, in-process, without SMTP or workers.

    .venv/bin/python bench/drain.py [-n 800] [--postgresql | --db URL] [--profile FILE] [--jobs]

The generated mails (bench/mailgen.py) are stored as raw rows first (as the
receiver would), then `ticketd.pipeline.drain` turns them into tickets; mails/s
is N over the drain time; the statements per mail count every one executed
(`bench/statements.py` measures what each costs). `--jobs` then runs, one
after another in this thread, the jobs processing enqueued (acknowledgements
delivered to an aiosmtpd sink in another process, round-robin assignment, and
the jobs those enqueue): the workers' share. Both phases print their CPU time per mail.
`--profile FILE` writes cProfile stats of the drain (of the jobs to FILE.jobs).
"""

from __future__ import annotations

import argparse
import cProfile
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/ingest.py must not shadow ingest/

import mailgen  # noqa: E402
from throwaway import database  # noqa: E402
from sqlalchemy import event  # noqa: E402

from ingest.parse import dedupe_key  # noqa: E402
from ticketd.app import build_app  # noqa: E402
from ticketd.pipeline import drain  # noqa: E402
from ticketd.settings import load_settings  # noqa: E402
from ticketd.store.db import READ_ONLY  # noqa: E402
from ticketd.store.inbox import RawMail, store_raw_batch  # noqa: E402
from tests.conftest import write_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=800)
    parser.add_argument("--db", help="database URL, used as it is: ticketd's tables are made in it and kept "
                                     "(default: SQLite in a temporary directory)")
    parser.add_argument("--postgresql", action="store_true",
                        help="a throwaway PostgreSQL database (server: TICKETD_BENCH_PG), dropped afterwards")
    parser.add_argument("--profile", help="write cProfile stats here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", action="store_true", help="then run the enqueued delivery and assignment jobs")
    args = parser.parse_args()

    mails = mailgen.generate(args.n, args.seed)
    with tempfile.TemporaryDirectory() as tmp, database(args.postgresql, tmp) as throwaway:
        db = args.db or throwaway
        sink_port = free_port()
        config = write_config(Path(tmp), db, rules=(ROOT / "rules.yaml").read_text(), outbound_port=sink_port,
                              extra="log_level: WARNING\n")
        app = build_app(load_settings(config, environ={}))
        jobs: list[tuple[str, tuple]] = []
        app.enqueue = lambda name, job_args: jobs.append((name, job_args)) or True
        raws = []
        for mail in mails:
            key, message_id = dedupe_key(mail.data)
            raws.append(RawMail(mail.data, "smtp", key, message_id, mail.sender, [mailgen.SUPPORT]))
        for i in range(0, len(raws), 100):
            store_raw_batch(app.engine, raws[i:i + 100])
        writes = count_write_transactions(app.engine)
        profiler = cProfile.Profile() if args.profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        done = 0
        while done < len(mails):
            taken = drain(app)
            if not taken:
                break
            done += taken
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        transactions, statements = writes.pop()
        print(f"{app.engine.dialect.name}: {done} mails processed in {took:.1f} s: {done / took:.0f} mails/s, "
              f"{1000 * cpu / max(1, done):.2f} ms of CPU per mail, {transactions / max(1, done):.2f} write "
              f"transactions and {statements / max(1, done):.1f} statements per mail")
        if args.jobs:
            run_jobs(app, jobs, sink_port, done, args.profile and args.profile + ".jobs")
            transactions, statements = writes.pop()
            print(f"  ... {transactions / max(1, done):.2f} write transactions and "
                  f"{statements / max(1, done):.1f} statements per mail")
        app.engine.dispose()


class count_write_transactions:
    """Counts the engine's write transactions (reads through `reading` are not counted) and every
    statement executed; pop() gives both and restarts."""

    def __init__(self, engine) -> None:
        self.count = self.statements = 0
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "after_cursor_execute", self._statement)

    def _begin(self, conn) -> None:
        if not conn.get_execution_options().get(READ_ONLY):
            self.count += 1

    def _statement(self, *_args) -> None:
        self.statements += 1

    def pop(self) -> tuple[int, int]:
        counts = self.count, self.statements
        self.count = self.statements = 0
        return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_jobs(app, jobs: list[tuple[str, tuple]], sink_port: int, mails: int, profile: str | None) -> None:
    """Run the enqueued jobs in order, as a worker thread would, against an SMTP sink; print their rate."""
    from outbound.delivery import deliver
    from ticketd.assignment import assign

    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{sink_port}",
                             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", sink_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        actors = {"send_mail": deliver, "assign_ticket": assign}
        counts: dict[str, int] = {}
        profiler = cProfile.Profile() if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        while jobs:
            name, job_args = jobs.pop(0)
            actors[name](app, *job_args)
            counts[name] = counts.get(name, 0) + 1
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        sink.terminate()
        sink.wait(10)
    print(f"{app.engine.dialect.name}: jobs {counts} in {took:.1f} s: {1000 * took / mails:.2f} ms per mail, "
          f"{1000 * cpu / mails:.2f} ms of CPU")


if __name__ == "__main__":
    main()
