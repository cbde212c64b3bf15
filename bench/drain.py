"""Processing benchmark: stored raw mails into tickets, in-process, without SMTP or workers.

    .venv/bin/python bench/drain.py [-n 800] [--db URL] [--profile FILE]

The generated mails (bench/mailgen.py) are stored as raw rows first (as the
receiver would), then `ticketd.pipeline.drain` turns them into tickets; mails/s
is N over the drain time. `--profile` writes cProfile stats of the drain.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/ingest.py must not shadow ingest/

import mailgen  # noqa: E402
from ingest.parse import dedupe_key  # noqa: E402
from ticketd.app import build_app  # noqa: E402
from ticketd.pipeline import drain  # noqa: E402
from ticketd.settings import load_settings  # noqa: E402
from ticketd.store.inbox import RawMail, store_raw_batch  # noqa: E402
from tests.conftest import write_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=800)
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--profile", help="write cProfile stats here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    mails = mailgen.generate(args.n, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/bench.db"
        config = write_config(Path(tmp), db, rules=(ROOT / "rules.yaml").read_text(),
                              extra="log_level: WARNING\n")
        app = build_app(load_settings(config, environ={}))
        raws = []
        for mail in mails:
            key, message_id = dedupe_key(mail.data)
            raws.append(RawMail(mail.data, "smtp", key, message_id, mail.sender, [mailgen.SUPPORT]))
        for i in range(0, len(raws), 100):
            store_raw_batch(app.engine, raws[i:i + 100])
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
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
        took = time.perf_counter() - started
        print(f"{app.engine.dialect.name}: {done} mails processed in {took:.1f} s: {done / took:.0f} mails/s")
        app.engine.dispose()


if __name__ == "__main__":
    main()
