"""Memory benchmark: what `ticketd run` holds while it takes in the biggest mails it accepts.

    .venv/bin/python bench/memory.py [--db URL] [--mb 24] [--count 3] [--parallel 1]

`ticketd run` (embedded, SQLite in a temporary directory unless --db) gets
`--count` rounds of `--parallel` mails of about `--mb` MB each over SMTP (a
PDF-like attachment, base64 on the wire, as mail clients send it), the
mails of a round from as many clients at once; each round is processed and
acknowledged before the next. Printed: the daemon's resident memory
(VmRSS) idle, after each round, and its peak (VmHWM), from /proc; likewise
for its child processes (the `prepare_processes` that parse mail, and
multiprocessing's resource tracker).
"""

from __future__ import annotations

import argparse
import email.policy
import os
import smtplib
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402

from tests.conftest import free_port, write_config  # noqa: E402
from tests.daemon import DaemonProcess  # noqa: E402
from tests.sink import Sink  # noqa: E402
from tests.waiting import eventually  # noqa: E402
from procstat import memory_mb, with_descendants  # noqa: E402  (bench/, the script's folder, is on sys.path)


def big_mail(n: int, megabytes: float) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Big Sender {n} <big{n}@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Scan of the contract, part {n}"
    msg["Message-ID"] = f"<big-{n}-{time.monotonic_ns()}@example.org>"
    msg.set_content("The scan is attached.\n")
    # base64 grows the bytes by 4/3; leave room for headers under the limit.
    payload = os.urandom(int(megabytes * 1024 * 1024 * 3 / 4))
    msg.add_attachment(payload, maintype="application", subtype="pdf", filename=f"contract-{n}.pdf")
    return msg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--mb", type=float, default=24, help="size of each mail on the wire, MB")
    parser.add_argument("--count", type=int, default=3, help="rounds")
    parser.add_argument("--parallel", type=int, default=1, help="clients sending at once in a round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sink = Sink(free_port()).start()
        db = args.db or f"sqlite:///{work}/bench.db"
        config = write_config(work, db, rules="agents: []\nroutes: []\n", smtp_port=free_port(),
                              outbound_port=sink.port, extra=f"outbound: {{host: 127.0.0.1, port: {sink.port}}}\n"
                                                          "log_level: INFO\n")
        daemon = DaemonProcess(config).start()
        engine = sqlalchemy.create_engine(db)
        try:
            pid = daemon.proc.pid
            idle = memory_mb(pid)
            print(f"idle: RSS {idle['VmRSS']:.0f} MB")
            port = int(config.read_text().split("listen: 127.0.0.1:", 1)[1].split()[0])
            for n in range(1, args.count + 1):
                wires = [big_mail(n * 100 + i, args.mb).as_bytes(policy=email.policy.SMTP)   # CRLF, as SMTP
                         for i in range(args.parallel)]                                    # carries it
                started = time.monotonic()

                def send(wire: bytes) -> None:
                    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                        client.sendmail("big@example.org", ["support@example.com"], wire)

                senders = [threading.Thread(target=send, args=(w,)) for w in wires]
                for t in senders:
                    t.start()
                for t in senders:
                    t.join()
                accepted = time.monotonic() - started
                total = n * args.parallel

                def processed() -> bool:
                    with engine.connect() as conn:
                        return conn.execute(sqlalchemy.text(
                            "SELECT count(*) FROM raw_mail WHERE state = 'done'")).scalar_one() == total

                assert eventually(processed, timeout=300, step=0.1), "the mails were not processed"
                assert eventually(lambda: len(sink.messages) == total, timeout=120), "acknowledgements missing"
                took = time.monotonic() - started
                now = memory_mb(pid)
                children = "".join(f"; child process {child}: RSS {m['VmRSS']:.0f} MB, peak {m['VmHWM']:.0f} MB"
                                   for child in with_descendants(pid)[1:] for m in [memory_mb(child)])
                print(f"round {n}: {args.parallel} x {len(wires[0]) / 1e6:.1f} MB on the wire, all 250 after "
                      f"{accepted:.2f} s, tickets and acknowledgements after {took:.2f} s; RSS {now['VmRSS']:.0f} MB, "
                      f"peak so far {now['VmHWM']:.0f} MB{children}")
        finally:
            daemon.terminate()
            engine.dispose()
            sink.stop()


if __name__ == "__main__":
    main()
