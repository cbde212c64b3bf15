"""A ticket's stored files: which there are, and copies of them under their names for an admin."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from ticketd.store.files import attachment_path


def files_of(ticket: dict) -> list[dict]:
    """Every file on the ticket's messages (as `views.show_ticket` gives them), oldest first, with its message."""
    return [{"message": m["id"], "from": m["from"], "internal": m["internal"], **a}
            for m in ticket["messages"] if m["direction"] == "in" for a in m["attachments"]]


# The longest file name most file systems take (ext4, XFS, btrfs: bytes, not characters).
NAME_MAX_BYTES = 255


def _fitted(prefix: str, filename: str) -> str:
    """`prefix` + `filename`, the name's stem shortened (its extension kept) to fit NAME_MAX_BYTES.

    The stored name is already at most 255 bytes (ingest/parse.py): the
    prefix that keeps copies apart would make such a name one the file
    system refuses.
    """
    name = prefix + filename
    if len(name.encode("utf-8")) <= NAME_MAX_BYTES:
        return name
    stem, dot, suffix = filename.rpartition(".")
    if not dot or len(suffix.encode("utf-8")) > 32:   # no extension worth keeping
        stem, dot, suffix = filename, "", ""
    room = NAME_MAX_BYTES - len((prefix + dot + suffix).encode("utf-8"))
    return prefix + stem.encode("utf-8")[:room].decode("utf-8", "ignore") + dot + suffix


def _free_name(directory: Path, message_row_id: int, filename: str, sha256: str) -> tuple[Path, bool]:
    """Where to copy a file, and whether it is there already (an earlier run's copy: not copied twice).

    The stored name is sanitised (no path, no control characters); the
    message id keeps two "image001.png" apart, and nothing else is
    overwritten.
    """
    candidate, n = directory / _fitted(f"{message_row_id}-", filename), 1
    while candidate.exists():
        if candidate.is_file() and _sha256(candidate) == sha256:
            return candidate, True
        n += 1
        candidate = directory / _fitted(f"{message_row_id}-{n}-", filename)
    return candidate, False


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def copy_files(files: list[dict], attachments_dir: Path, out: Path) -> list[tuple[dict, Path | None]]:
    """Copy each file into `out`; (file, its new path), or None where the stored file is gone."""
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in files:
        source = attachment_path(attachments_dir, f["sha256"])
        if not source.exists():
            copied.append((f, None))
            continue
        target, there = _free_name(out, f["message"], f["filename"] or "file", f["sha256"])
        if not there:
            shutil.copyfile(source, target)
        copied.append((f, target))
    return copied
