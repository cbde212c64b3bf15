"""Which rules the running daemon follows: the digest it notes under data_dir, read by `ticketd status`.

The daemon keeps the rules it has when a saved rules.yaml is refused
(errors, or no agents where it has some: ticketd/rules_watch.py) and says
so in its log; the note lets `ticketd status` say it too, whatever the
reason, by comparing the file on disk with what is in force.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

NOTE_FILE = "rules-in-force"

log = logging.getLogger("ticketd.rules")


@dataclass(frozen=True)
class InForce:
    """The digest of the rules in force and when the daemon noted it (seconds since the epoch)."""
    digest: str
    noted_at: float


def note_rules_in_force(data_dir: Path, digest: str) -> None:
    """Write the digest of the rules now in force; a failure (a full disk) only leaves status unable to tell."""
    path = Path(data_dir) / NOTE_FILE
    part = path.with_name(f"{NOTE_FILE}.{os.getpid()}")
    try:
        part.write_text(digest + "\n", encoding="ascii")
        os.replace(part, path)   # a reader sees the old note or the new one, never half of one
    except OSError as exc:
        log.warning("cannot note the rules in force in %s (%s): `ticketd status` cannot tell whether "
                    "rules.yaml as saved is in force", path, exc.strerror)
        part.unlink(missing_ok=True)


def rules_in_force(data_dir: Path) -> InForce | None:
    """What the daemon last noted, or None (no note: a daemon that never ran here, or one it could not write)."""
    path = Path(data_dir) / NOTE_FILE
    try:
        return InForce(path.read_text(encoding="ascii").strip(), path.stat().st_mtime)
    except (OSError, UnicodeDecodeError):
        return None
