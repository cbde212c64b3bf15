"""Ingest benchmark: the same generated mails over SMTP to the fsync ceiling, ticketd on SQLite and PostgreSQL.

Run from the repository root:  .venv/bin/python bench/ingest.py -n 2000
Each target runs as a subprocess on a free 127.0.0.1 port; 4 client processes
each reuse one smtplib connection. For ticketd the raw_mail table is polled
until every row is done or quarantined ("into tickets"), then the outbox and
the tickets until every mail was sent and every ticket assigned.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mailgen  # noqa: E402
from throwaway import database  # noqa: E402
from procstat import cpu_seconds, machine_busy, memory_mb, with_descendants  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
TICKETD = ROOT / ".venv" / "bin" / "ticketd"
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
BENCH_REDIS = os.environ.get("TICKETD_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


# ------------------------------------------------------------------ clients


def _client(port: int, mails: list[mailgen.Mail], counter, go, results) -> None:
    """One SMTP connection, reused; takes the next mail index from the shared counter."""
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
    smtp.ehlo("bench.example.org")
    go.wait()
    cpu_start = os.times()
    out = []
    while True:
        with counter.get_lock():
            i = counter.value
            counter.value += 1
        if i >= len(mails):
            break
        mail = mails[i]
        start = time.time()
        try:
            smtp.sendmail(mail.sender, [mailgen.SUPPORT], mail.data)
            code = 250
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
        except smtplib.SMTPServerDisconnected:
            code = -1
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
        out.append((i, start, time.time(), code))
    try:
        smtp.quit()
    except smtplib.SMTPException:
        pass
    cpu_end = os.times()
    results.put((out, cpu_end.user + cpu_end.system - cpu_start.user - cpu_start.system))


@dataclass
class Result:
    name: str
    sent: list = field(default_factory=list)       # (index, start, end, code)
    t0: float = 0.0
    t_sent: float = 0.0          # the last client finished
    backlog_at_sent: int | None = None
    t_done: float | None = None  # every raw row done or quarantined
    states: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)     # CPU seconds from the first send to the end, by role
    machine_busy: float = 0.0                   # share of all cores busy over that time

    @property
    def accepted(self) -> int:
        return sum(1 for s in self.sent if s[3] == 250)

    def latency(self, q: float) -> float:
        lat = sorted(s[2] - s[1] for s in self.sent)
        return lat[min(len(lat) - 1, int(q * len(lat)))]

    @property
    def accept_rate(self) -> float:
        return self.accepted / (max(s[2] for s in self.sent) - self.t0)

    @property
    def ticket_rate(self) -> float | None:
        if self.t_done is None:
            return None
        done = self.states.get("done", 0) + self.states.get("quarantined", 0)
        return done / (self.t_done - self.t0)


def drive(name: str, port: int, mails, clients: int, poll=None, timeout: float = 600,
          processes: dict[str, list[int]] | None = None) -> Result:
    """Send every mail from `clients` processes; poll() -> {state: count} until nothing is waiting.

    `processes` names the pids whose CPU time is counted, by role ("server",
    "sink"); the clients count their own.
    """
    processes = processes or {}
    ctx = mp.get_context("fork")  # the children share the generated mails
    counter, go, results = ctx.Value("l", 0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(port, mails, counter, go, results)) for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # every client connected and said EHLO
    result = Result(name)
    cpu_start = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in processes.items()}
    busy_start = machine_busy()
    result.t0 = time.time()
    go.set()
    collected = 0
    while collected < clients:
        try:
            sent, client_cpu = results.get(timeout=0.05)
            result.sent.extend(sent)
            result.cpu["clients"] = result.cpu.get("clients", 0.0) + client_cpu
            collected += 1
            continue
        except Exception:
            pass
        if time.time() - result.t0 > timeout:
            raise RuntimeError(f"{name}: clients still sending after {timeout}s")
    for p in procs:
        p.join()
    result.t_sent = max(s[2] for s in result.sent)
    if poll is None:
        _count_cpu(result, processes, cpu_start, busy_start)
        return result
    states = poll()
    result.backlog_at_sent = states.get("received", 0)
    while states.get("received", 0) + states.get("processing", 0) > 0:
        if time.time() - result.t0 > timeout:
            raise RuntimeError(f"{name}: backlog still {states} after {timeout}s")
        time.sleep(0.02)
        states = poll()
    result.t_done = time.time()
    result.states = states
    _count_cpu(result, processes, cpu_start, busy_start)
    return result


def _count_cpu(result: Result, processes: dict[str, list[int]], cpu_start: dict, busy_start) -> None:
    for role, pids in processes.items():
        result.cpu[role] = sum(cpu_seconds(pid) for pid in pids) - cpu_start[role]
    busy, total = machine_busy()
    result.machine_busy = (busy - busy_start[0]) / max(1e-9, total - busy_start[1])


def state_poller(engine: sqlalchemy.Engine):
    query = sqlalchemy.text("SELECT state, count(*) FROM raw_mail GROUP BY state")

    def poll() -> dict:
        with engine.connect() as conn:
            return dict(conn.execute(query).all())

    return poll


# ------------------------------------------------------------------ targets


def run_ceiling(work: Path, mails, clients: int, sink_pid: int) -> Result:
    port = free_port()
    proc = subprocess.Popen([str(PYTHON), str(ROOT / "bench" / "ceiling.py"), "--listen", f"127.0.0.1:{port}",
                             "--file", str(work / "ceiling.mbox")], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        return drive("ceiling (append+fsync)", port, mails, clients, processes={"server": [proc.pid], "sink": [sink_pid]})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def run_floor(work: Path, mails, clients: int, sink_pid: int) -> Result:
    """bench/floor.py: the least a mail-to-ticket server does, polled into tickets like the daemon."""
    port = free_port()
    db = work / "floor.db"
    proc = subprocess.Popen([str(PYTHON), str(ROOT / "bench" / "floor.py"), "--listen", f"127.0.0.1:{port}",
                             "--db", str(db)], stdout=subprocess.DEVNULL)
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        wait_port(port, proc)
        server = with_descendants(proc.pid)
        result = drive("floor (parse + thread, SQLite)", port, mails, clients, poll=state_poller(engine),
                       processes={"server": server, "sink": [sink_pid]})
        with engine.connect() as conn:
            result.extra["tickets"] = conn.execute(sqlalchemy.text("SELECT count(*) FROM tickets")).scalar()
        return result
    finally:
        engine.dispose()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def write_config(work: Path, db_url: str, smtp_port: int, outbound_port: int, redis_url: str | None = None) -> Path:
    """The shape tests/conftest.py write_config uses; sweep_seconds left at its default."""
    config = work / "ticketd.yaml"
    config.write_text(
        f"""\
support_address: support@example.com
redis_url: {redis_url or 'null'}
database_url: "{db_url}"
data_dir: {work / 'var'}
secret_key: bench-secret
rules_file: {ROOT / 'rules.yaml'}
smtp:
  listen: 127.0.0.1:{smtp_port}
outbound:
  host: 127.0.0.1
  port: {outbound_port}
""")
    return config


def run_daemon(name: str, work: Path, db_url: str, mails, clients: int, outbound_port: int, sink_pid: int,
               profile: str | None, workers: int = 0) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    redis_url = None
    if workers:
        # Redis mode: `ticketd run` receives and processes; delivery and
        # assignment run in `workers` separate `ticketd worker` processes.
        redis_url = BENCH_REDIS
        subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, stdout=subprocess.DEVNULL)
    config = write_config(work, db_url, port, outbound_port, redis_url)
    log = open(work / "ticketd.log", "wb")
    proc = subprocess.Popen([str(TICKETD), "run", "--config", str(config)], cwd=work, stdout=log, stderr=log)
    worker_procs = [subprocess.Popen([str(TICKETD), "worker", "--config", str(config)], cwd=work, stdout=log,
                                     stderr=log) for _ in range(workers)]
    engine = sqlalchemy.create_engine(db_url)
    spy = None
    try:
        wait_port(port, proc)
        idle_memory = memory_mb(proc.pid)
        if profile:
            mode = "gil" if "gil" in profile_modes else "idle" if "idle" in profile_modes else "cpu"
            out = Path(profile) / f"{name.split()[1]}.{mode}.txt"
            flags = {"gil": ["--gil"], "idle": ["--idle"], "cpu": []}[mode]
            spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "50",
                                    "--threads", "--subprocesses", "-o", str(out), *flags],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        # The server is `ticketd run` with the processes it starts (the
        # preparing pool) and any `ticketd worker`s.
        server = [pid for p in (proc, *worker_procs) for pid in with_descendants(p.pid)]
        # Each ticketd process on its own too, in tree order: the receiver
        # (the pid started), multiprocessing's resource tracker, the back
        # office, its parsing process, then any `ticketd worker`s.
        parts = {f"server/{i}": [pid] for i, pid in enumerate(server)}
        result = drive(name, port, mails, clients, poll=state_poller(engine), processes={
            "server": server, "sink": [sink_pid], **parts})
        if spy is not None:   # the profile covers the burst until every mail is in a ticket, not what follows
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            spy = None
        result.extra["parts"] = ", ".join(
            f"{1000 * result.cpu[role] / max(1, len(result.sent)):.2f}" for role in parts)
        with engine.connect() as conn:
            q = lambda sql: conn.execute(sqlalchemy.text(sql)).all()  # noqa: E731
            result.extra["tickets"] = q("SELECT count(*) FROM tickets")[0][0]
            result.extra["matched_by"] = dict(q("SELECT matched_by, count(*) FROM messages "
                                                "WHERE direction = 'in' GROUP BY matched_by"))
            result.extra["outbox"] = dict(q("SELECT state, count(*) FROM outbox GROUP BY state"))
        result.extra["settled"] = wait_settled(engine) - result.t0
        after = memory_mb(proc.pid)
        result.extra["memory"] = (f"`ticketd run` RSS {idle_memory['VmRSS']:.0f} MB idle, peak "
                                  f"{after['VmHWM']:.0f} MB, {after['VmRSS']:.0f} MB after the run")
        children = [memory_mb(pid) for pid in with_descendants(proc.pid)[1:]]
        if children:
            result.extra["memory"] += "; its child processes peak " + ", ".join(
                f"{child['VmHWM']:.0f} MB" for child in children)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        proc.send_signal(signal.SIGTERM)
        result_code = proc.wait(60)
        for worker in worker_procs:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        engine.dispose()
        log.close()
    if result_code != 0:
        print(f"warning: {name} exited with {result_code}; see {work / 'ticketd.log'}", file=sys.stderr)
    return result


profile_modes: set[str] = set()


# ------------------------------------------------------------------ report


def wait_settled(engine: sqlalchemy.Engine, timeout: float = 600) -> float:
    """When every outbox row was sent and every ticket assigned (the benchmark's rules.yaml has
    an available agent in each group): the time of day, after the backlog of delivery and assignment."""
    query = sqlalchemy.text(
        "SELECT (SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')) + "
        "(SELECT count(*) FROM tickets WHERE assignee IS NULL AND status <> 'closed')")
    deadline = time.time() + timeout
    while time.time() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar() == 0:
                return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"outbox or assignment not done after {timeout}s")


def markdown_table(head: tuple, rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def table(results: list[Result], ceiling: Result | None) -> str:
    head = ("target", "250 /s", "into tickets /s", "% of ceiling", "backlog at end of sending",
            "p50 to 250 ms", "p99 to 250 ms", "p99 / ceiling p99")
    rows = []
    for r in results:
        ticket_rate = r.ticket_rate
        ceiling_rate = ceiling.accept_rate if ceiling else None
        rows.append((
            r.name,
            f"{r.accept_rate:.0f}" + ("" if r.accepted == len(r.sent) else f" ({len(r.sent) - r.accepted} not 250)"),
            "-" if ticket_rate is None else f"{ticket_rate:.0f}",
            "-" if ticket_rate is None or not ceiling_rate else f"{100 * ticket_rate / ceiling_rate:.0f}%",
            "-" if r.backlog_at_sent is None else str(r.backlog_at_sent),
            f"{1000 * r.latency(0.50):.1f}", f"{1000 * r.latency(0.99):.1f}",
            "-" if ceiling is None or r is ceiling else f"{r.latency(0.99) / ceiling.latency(0.99):.1f}x",
        ))
    return markdown_table(head, rows)


def cpu_table(results: list[Result]) -> str:
    """Where the CPU went, per mail, from the first send until every mail was in a ticket (or the last 250)."""
    head = ("target", "server CPU ms/mail", "clients CPU ms/mail", "sink CPU ms/mail", "machine busy")
    rows = []
    for r in results:
        per_mail = lambda role: f"{1000 * r.cpu.get(role, 0.0) / max(1, len(r.sent)):.2f}"  # noqa: E731
        rows.append((r.name, per_mail("server"), per_mail("clients"), per_mail("sink"),
                     f"{100 * r.machine_busy:.0f}% of {os.cpu_count()} cores"))
    return markdown_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="mails to send to each target")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default="ceiling,sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=0,
                        help="0: the embedded default; N: Redis mode with N `ticketd worker` processes")
    parser.add_argument("--profile", metavar="DIR", help="record the daemon with py-spy (raw stacks) into DIR")
    parser.add_argument("--gil", action="store_true", help="with --profile: sample only the thread holding the GIL")
    parser.add_argument("--idle", action="store_true", help="with --profile: sample waiting threads too (wall time)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.gil:
        profile_modes.add("gil")
    if args.idle:
        profile_modes.add("idle")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    t = time.time()
    mails = mailgen.generate(args.n, args.seed)
    print(f"generated {mailgen.describe(mails)} in {time.time() - t:.1f}s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ticketd-bench-"))
    targets = args.targets.split(",")
    # Acks go to a real SMTP sink, so the outbound workers do their whole job.
    sink_port = free_port()
    sink = subprocess.Popen([str(PYTHON), "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{sink_port}",
                             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: list[Result] = []
    ceiling = None
    mode = f" + {args.workers} workers" if args.workers else ""
    try:
        wait_port(sink_port, sink)
        for target in targets:
            print(f"running {target} ...", flush=True)
            if target == "ceiling":
                ceiling = run_ceiling(work, mails, args.clients, sink.pid)
                results.append(ceiling)
            elif target == "floor":
                results.append(run_floor(work, mails, args.clients, sink.pid))
            elif target == "sqlite":
                results.append(run_daemon("ticketd SQLite" + mode, work / "sqlite",
                                          f"sqlite:///{work}/sqlite/ticketd.db", mails, args.clients, sink_port,
                                          sink.pid, args.profile, args.workers))
            elif target == "postgresql":
                with database(True, str(work)) as url:
                    results.append(run_daemon("ticketd PostgreSQL" + mode, work / "postgresql", url, mails,
                                              args.clients, sink_port, sink.pid, args.profile, args.workers))
            else:
                raise SystemExit(f"unknown target {target}")
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")

    print()
    print(f"{args.n} mails, {args.clients} clients, {os.cpu_count()} cores")
    print(table(results, ceiling))
    print()
    print(cpu_table(results))
    for r in results:
        if r.states and "outbox" not in r.extra:
            print(f"{r.name}: raw_mail {r.states}; tickets {r.extra['tickets']}; sending took "
                  f"{r.t_sent - r.t0:.1f}s, into tickets {r.t_done - r.t0:.1f}s")
        elif r.states:
            print(f"{r.name}: raw_mail {r.states}; tickets {r.extra['tickets']}; "
                  f"inbound messages by matched_by {r.extra['matched_by']}; outbox {r.extra['outbox']}; "
                  f"sending took {r.t_sent - r.t0:.1f}s, into tickets {r.t_done - r.t0:.1f}s, everything "
                  f"sent and assigned {r.extra['settled']:.1f}s ({len(r.sent) / r.extra['settled']:.0f} mails/s); "
                  f"{r.extra['memory']}; CPU ms/mail by process, in tree order "
                  f"(the receiver first): {r.extra['parts']}")
    if ceiling is not None:
        for r in results:
            if r is ceiling or r.ticket_rate is None:
                continue
            ok_rate = r.ticket_rate >= 0.7 * ceiling.accept_rate
            ok_p99 = r.latency(0.99) <= 2 * ceiling.latency(0.99)
            print(f"target for {r.name}: into tickets >= 70% of ceiling: {'met' if ok_rate else 'MISSED'}; "
                  f"p99 to 250 <= 2x ceiling: {'met' if ok_p99 else 'MISSED'}")


if __name__ == "__main__":
    main()
