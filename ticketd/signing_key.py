"""The key that signs reply addresses and Message-IDs: the configured one, or one made once under data_dir."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("ticketd")

# The value the shipped ticketd.yaml carries. Everyone can read it, and with
# it forge an agent's signed reply address: it must never sign anything.
EXAMPLE_SECRET = "change-me"
KEY_FILE = "secret_key"


def signing_key(configured: str, data_dir: Path, *, create: bool = True) -> str | None:
    """`configured`, unless it is empty or the example's: then the key kept in data_dir/secret_key.

    The first process to need one makes it (random, mode 0600) and every
    later one, on this host or another sharing data_dir, reads the same key,
    so `ticketd run` works out of the box without signing with a public key.
    With `create` False (a read-only look) a key not made yet is None.
    """
    if configured and configured != EXAMPLE_SECRET:
        return configured
    path = data_dir / KEY_FILE
    if not path.exists():
        if not create:
            return None
        _create(path)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to have a new key made, or set secret_key in ticketd.yaml")
    return key


def _create(path: Path) -> None:
    """Write a new key to `path` unless another process got there first (written aside, then linked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(aside, path)   # atomic, and fails if the file is there: a reader never sees half a key
        log.warning("secret_key is not set in ticketd.yaml (or is the example's %r): reply addresses and "
                    "Message-IDs are signed with a key made now and kept in %s; keep that file, or set "
                    "secret_key (the same on every host)", EXAMPLE_SECRET, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink(missing_ok=True)
