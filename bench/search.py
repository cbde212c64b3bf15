"""Search benchmark: `tickets list --search` on a filled database, as the CLI runs it.

    .venv/bin/python bench/drain.py -n 10000 --db URL    # fill a database first
    .venv/bin/python bench/search.py --db URL [--repeat 5]

Each query runs through `ticketd.views.list_tickets` (what the CLI prints
from) `--repeat` times; the table shows the median wall time, with and
without `--limit 20`, and how many tickets matched. A word that no mail
holds is the worst case: every ticket's text is read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from ticketd.domain.search import search_terms  # noqa: E402
from ticketd.store.db import make_engine, reading  # noqa: E402
from ticketd.store.tables import messages, tickets  # noqa: E402
from ticketd.views import list_tickets  # noqa: E402

QUERIES = ["invoice", "ПРОБЛЕМА", "firewall reset", '"charged twice" 2024-0113', "kxyzzy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a database bench/drain.py --db filled")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    engine = make_engine(args.db)
    with reading(engine) as conn:
        count = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
        texts = conn.execute(select(func.count(), func.sum(func.length(messages.c.full_text)))).one()
    print(f"{engine.dialect.name}: {count} tickets, {texts[0]} messages, "
          f"{(texts[1] or 0) / 1e6:.1f} M characters of message text")
    print("| query | tickets found | median ms | median ms, --limit 20 |")
    print("|---|---|---|---|")
    for query in QUERIES:
        terms = search_terms(query)
        timings: dict[int | None, list[float]] = {None: [], 20: []}
        found = 0
        for _ in range(args.repeat):
            for limit in timings:
                started = time.perf_counter()
                rows = list_tickets(engine, limit=limit, terms=terms)
                timings[limit].append(1000 * (time.perf_counter() - started))
                if limit is None:
                    found = len(rows)
        print(f"| `{query}` | {found} | {statistics.median(timings[None]):.0f} | "
              f"{statistics.median(timings[20]):.0f} |")
    engine.dispose()


if __name__ == "__main__":
    main()
