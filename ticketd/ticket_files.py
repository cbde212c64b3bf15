"""A ticket's stored files: which there are, and copies of them under their names for an admin."""

from __future__ import annotations

import shutil
from pathlib import Path

from ticketd.store.files import attachment_path


def files_of(ticket: dict) -> list[dict]:
    """Every file on the ticket's messages (as `views.show_ticket` gives them), oldest first, with its message."""
    return [{"message": m["id"], "from": m["from"], "internal": m["internal"], **a}
            for m in ticket["messages"] if m["direction"] == "in" for a in m["attachments"]]


def _free_name(directory: Path, message_row_id: int, filename: str) -> Path:
    # The stored name is sanitised (no path, no control characters); the
    # message id keeps two "image001.png" apart, and nothing is overwritten.
    stem = f"{message_row_id}-{filename}"
    candidate, n = directory / stem, 1
    while candidate.exists():
        n += 1
        candidate = directory / f"{message_row_id}-{n}-{filename}"
    return candidate


def copy_files(files: list[dict], attachments_dir: Path, out: Path) -> list[tuple[dict, Path | None]]:
    """Copy each file into `out`; (file, its new path), or None where the stored file is gone."""
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in files:
        source = attachment_path(attachments_dir, f["sha256"])
        if not source.exists():
            copied.append((f, None))
            continue
        target = _free_name(out, f["message"], f["filename"] or "file")
        shutil.copyfile(source, target)
        copied.append((f, target))
    return copied
