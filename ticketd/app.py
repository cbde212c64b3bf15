"""What every shell function needs, built once from settings and passed down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ticketd.backlog import Backlog
from ticketd.domain.rules import RuleSet
from ticketd.domain.signing import Signer
from ticketd.rules_file import load_rules
from ticketd.settings import Settings
from ticketd.signing_key import desk_keys
from ticketd.store.db import ensure_schema, make_engine

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketd.prepare import Preparer

log = logging.getLogger("ticketd")


@dataclass
class App:
    settings: Settings
    engine: Engine
    signer: Signer
    rules: RuleSet
    # How work leaves a committed transaction: (actor name, args). The daemon
    # points this at dramatiq; until then nothing is sent anywhere, and the
    # sweeps pick the rows up from the database.
    # Returns False when the broker could not take the job (the sweep retries).
    enqueue: Callable[[str, tuple], bool | None] = lambda name, args: None
    # Woken when a raw mail is committed, so processing starts at once.
    mail_arrived: threading.Event = field(default_factory=threading.Event)
    # Whether processing has a backlog; `ticketd run`'s own jobs and sweeps give way to it (ticketd.backlog).
    backlog: Backlog = field(default_factory=Backlog)
    # Runs the sweep (outbox, unassigned tickets, timers) now instead of at
    # its next turn; the Sweeper sets it (workers/runtime.py).
    sweep_now: Callable[[], None] = lambda: None
    # Where raw mail is parsed before it is written (`ticketd.prepare`):
    # None prepares in the calling thread; the daemon sets a process pool.
    preparer: Preparer | None = None


def build_app(settings: Settings, *, create_schema: bool = True, rules_required: bool = False) -> App:
    """The App; `rules_required`: a missing rules file is a RulesError, not a desk without agents (the CLI)."""
    # The rules first: a daemon refused for a broken rules.yaml leaves no new database or data_dir behind.
    if rules_required or settings.rules_file.exists():
        rules = load_rules(settings.rules_file)
    else:
        log.warning("no rules file at %s: no agents, no routes, no timers", settings.rules_file)
        rules = RuleSet()
    # data_dir next: one that cannot be made (a file of that name, no permission) leaves no new database either.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    if create_schema:
        ensure_schema(engine)
    keys = desk_keys(settings.secret_key, settings.data_dir, engine)
    return App(
        settings=settings,
        engine=engine,
        signer=Signer(keys.signing, tuple(settings.previous_secret_keys) + keys.also_verifying),
        rules=rules,
    )
