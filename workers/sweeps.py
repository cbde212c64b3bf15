"""One sweep pass: pending outbox rows, unassigned tickets, due timers, the agents' daily summaries."""

from __future__ import annotations

import logging

from outbound.delivery import sweep_outbox
from ticketd.app import App
from ticketd.assignment import sweep_unassigned
from ticketd.daily_summary import send_daily_summaries
from ticketd.repeating_failures import RepeatingFailures
from ticketd.timers import fire_due_timers

log = logging.getLogger("ticketd.sweeps")
# A database down for an hour fails every step the same way every few seconds: one traceback will do.
_failures = RepeatingFailures(log)

# Each step runs on its own: one that fails never keeps the others from
# catching up.
STEPS = (sweep_outbox, sweep_unassigned, fire_due_timers, send_daily_summaries)


def sweep_once(app: App, *, asked: bool = False) -> None:
    """Every step once; `asked` (SIGUSR1 from an admin's command) takes fresh rows without the grace."""
    for step in STEPS:
        try:
            if asked and step in (sweep_outbox, sweep_unassigned):
                step(app, grace_seconds=0)
            else:
                step(app)
        except Exception:
            _failures.failed("sweep step %s failed; trying again next round", step.__name__)
