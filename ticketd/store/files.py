"""Attachments on disk under data_dir, stored by sha256 and written atomically."""

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
