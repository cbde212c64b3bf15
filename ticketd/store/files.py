"""Attachments on disk under data_dir, stored by sha256 and written atomically; set aside before erasure."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def attachment_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


@dataclass(frozen=True)
class OnDisk:
    """A file found under an attachment directory: its name, when it was last written, its size."""
    path: Path
    name: str
    mtime: float
    size: int


def files_on_disk(root: Path, first: str) -> list[OnDisk]:
    """The files in the attachment directories whose name begins with `first` (`a`: a0/ to af/)."""
    found = []
    for second in "0123456789abcdef":
        try:
            entries = list(os.scandir(root / f"{first}{second}"))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue   # removed meanwhile (an erasure set it aside)
            if entry.is_file(follow_symlinks=False):
                found.append(OnDisk(Path(entry.path), entry.name, st.st_mtime, st.st_size))
    return found


def store_blob(root: Path, sha256: str, data: bytes) -> Path:
    """Write once; a second write of the same content is a no-op.

    Written to a temp file, fsynced and renamed, so a crash never leaves a
    half file under the final name (Mailman's switchboard does the same).
    """
    path = attachment_path(root, sha256)
    if path.exists():
        try:
            # Written again now, in effect: the sweep of files no row names
            # counts its grace from here, for a mail prepared again (one
            # that waited, or whose processing was killed before its commit).
            os.utime(path)
            return path
        except FileNotFoundError:
            pass   # set aside meanwhile: written anew below
        except OSError:
            return path   # not ours to touch (restored by another user): it is there, which is what counts
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
