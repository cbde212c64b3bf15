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
# two take, a file named by a committed row ends up on disk.


def set_aside(root: Path, sha256: str) -> Path | None:
    """Move the file to a hidden name beside it before deciding to remove it; None if it is not there."""
    path = attachment_path(root, sha256)
    aside = path.with_name(f".aside-{sha256}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    return aside


def put_back(root: Path, sha256: str, aside: Path) -> None:
    """Return a set-aside file that a row still names (over a copy a writer may have written meanwhile)."""
    os.replace(aside, attachment_path(root, sha256))
