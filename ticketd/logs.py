"""Logging set up once per process: the daemon's, a worker's, a parsing process's and a command's."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Lines of `level` and above to stderr, each with its time, level and logger."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # aiosmtpd logs three INFO lines per connection; ticketd logs each mail itself.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))

