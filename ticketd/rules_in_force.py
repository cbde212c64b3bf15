"""Which rules the running daemon follows: the digest it notes under data_dir, read by `ticketd status`.

The daemon keeps the rules it has when a saved rules.yaml is refused
(errors, or no agents where it has some: ticketd/rules_watch.py) and says
so in its log; the note lets `ticketd status` say it too, whatever the
reason, by comparing the file on disk with what is in force. A refusal is
noted too (the refused file's digest and why): the commands that act by
the rules will not act by a file the daemon refused (ticketd/cli/common.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

NOTE_FILE = "rules-in-force"

log = logging.getLogger("ticketd.rules")


@dataclass(frozen=True)
class Refused:
    """A rules file the daemon refused while it kept the rules in force: its digest, and why in a few words."""
    digest: str
    why: str


@dataclass(frozen=True)
class InForce:
    """The digest of the rules in force and when the daemon noted it (seconds since the epoch); the last file
    it refused since, if any."""
    digest: str
    noted_at: float
    refused: Refused | None = None


def note_rules_in_force(data_dir: Path, digest: str, refused: Refused | None = None) -> None:
    """Write the digest of the rules now in force, and the file refused since; a failure (a full disk) only
    leaves status and the commands unable to tell."""
    path = Path(data_dir) / NOTE_FILE
    part = path.with_name(f"{NOTE_FILE}.{os.getpid()}")
    # The first line alone is the digest in force (as the note always was); a refusal follows on the second.
    text = digest + "\n" + (f"refused {refused.digest} {_one_line(refused.why)}\n" if refused else "")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)   # a reader sees the old note or the new one, never half of one
    except OSError as exc:
        log.warning("cannot note the rules in force in %s (%s): `ticketd status` cannot tell whether "
                    "rules.yaml as saved is in force", path, exc.strerror)
        part.unlink(missing_ok=True)


def rules_in_force(data_dir: Path) -> InForce | None:
    """What the daemon last noted, or None (no note: a daemon that never ran here, or one it could not write)."""
    path = Path(data_dir) / NOTE_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        noted_at = path.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    if not lines:
        return None
    refused = None
    if len(lines) > 1 and lines[1].startswith("refused "):
        _, refused_digest, *why = lines[1].split(" ", 2)
        refused = Refused(refused_digest, why[0] if why else "")
    return InForce(lines[0].strip(), noted_at, refused)


def refused_by_daemon(data_dir: Path, digest: str) -> Refused | None:
    """Why the daemon running on data_dir refused the rules file whose digest is `digest`; None when it did not
    say so: no daemon runs, the file changed since (the daemon looks at it within a few seconds), or the note
    is another daemon's, older than the one running."""
    from ticketd.views import daemon_status

    noted = rules_in_force(data_dir)
    if noted is None or noted.refused is None or noted.refused.digest != digest:
        return None
    daemon = daemon_status(data_dir)
    if not daemon["running"] or daemon["up_seconds"] is None:
        return None
    # As `ticketd status` reads the note (ticketd/views.py rules_status): one written before this daemon
    # started is another's, left behind (the daemon notes its own as it starts).
    if noted.noted_at < time.time() - daemon["up_seconds"] - 1:
        return None
    return noted.refused


def _one_line(text: str) -> str:
    return " ".join(text.split())
