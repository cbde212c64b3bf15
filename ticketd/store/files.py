"""Attachments on disk under data_dir, stored by sha256 and written atomically; set aside before erasure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def attachment_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def store_blob(root: Path, sha256: str, data: bytes) -> Path:
    """Write once; a second write of the same content is a no-op.

    Written to a temp file, fsynced and renamed, so a crash never leaves a
    half file under the final name (Mailman's switchboard does the same).
    """
    path = attachment_path(root, sha256)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# Erasure and processing meet on a shared file without a lock (a file may be
# named by several tickets' rows, and processing writes it before its
# transaction). Erasure moves the file out of the way first and only then
# asks whether any row still names it; processing checks the file again
# after its commit and writes it anew if it is gone. Whichever order the
# two take, a file named by a committed row ends up on disk. A set-aside
# file waits in one directory of its own, named with the setting process's
# pid, so that one left by a process killed in between is found and
# settled (`set_aside_by_the_dead`) without walking every file.

ASIDE = ".aside"


def set_aside(root: Path, sha256: str) -> Path | None:
    """Move the file out of its place before deciding to remove it; None if it is not there."""
    aside = root / ASIDE / f"{sha256}-{os.getpid()}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(attachment_path(root, sha256), aside)
    except FileNotFoundError:
        return None
    return aside


def put_back(root: Path, sha256: str, aside: Path) -> None:
    """Return a set-aside file that a row still names (over a copy a writer may have written meanwhile)."""
    try:
        os.replace(aside, attachment_path(root, sha256))
    except FileNotFoundError:
        pass   # settled already, by a start that took its process for dead


def set_aside_by_the_dead(root: Path) -> dict[str, Path]:
    """{sha256: path} of the set-aside files whose process no longer runs."""
    found = {}
    try:
        entries = list((root / ASIDE).iterdir())
    except FileNotFoundError:
        return found
    for path in entries:
        sha256, _, pid = path.name.partition("-")
        if pid.isdigit() and not _running(int(pid)):
            found[sha256] = path
    return found


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
