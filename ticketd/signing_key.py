"""The key that signs reply addresses and Message-IDs: the configured one, or the one the desk keeps in its database."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ticketd.clock import utcnow
from ticketd.store.desk_secrets import keep_secret, load_secret

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("ticketd")

# The value the shipped ticketd.yaml carries. Everyone can read it, and with
# it forge an agent's signed reply address: it must never sign anything.
EXAMPLE_SECRET = "change-me"
# Where earlier versions kept the key they made, one per data_dir (so one per host that had its own).
KEY_FILE = "secret_key"
SECRET_NAME = "signing_key"


@dataclass(frozen=True)
class DeskKeys:
    """The key that signs (None: none made yet, for a read-only look), and keys that still verify."""
    signing: str | None
    also_verifying: tuple[str, ...] = ()


def desk_keys(configured: str, data_dir: Path, engine: Engine | None, *, create: bool = True) -> DeskKeys:
    """`configured`, unless it is empty or the example's: then the key the desk keeps in its database.

    Every process on every host reads the one key there. Earlier versions
    made a key per data_dir, so a `ticketd worker` on a host of its own
    signed reply addresses with a key the daemon did not know, and agents'
    replies to them were not recognised. The first process to find the
    database without a key keeps the one under its data_dir (or a new
    random one); a data_dir key that differs from the database's still
    verifies, so what it signed keeps threading. With `create` False (a
    read-only look) nothing is written, and a key not made yet is None.
    """
    if configured and configured != EXAMPLE_SECRET:
        return DeskKeys(configured)
    on_disk = _read(data_dir / KEY_FILE)
    stored = load_secret(engine, SECRET_NAME) if engine is not None else None
    if stored is None:
        if not create or engine is None:
            return DeskKeys(on_disk)
        stored, made = keep_secret(engine, SECRET_NAME, on_disk or secrets.token_urlsafe(32), utcnow())
        if made and on_disk is None:
            log.warning("secret_key is not set in the settings (or is the example's %r): reply addresses and "
                        "Message-IDs are signed with a key made now and kept in the database, for every host; "
                        "back up the database, or set secret_key (the same on every host)", EXAMPLE_SECRET)
        elif made:
            log.info("the signing key of %s is kept in the database now, for every host", data_dir / KEY_FILE)
    return DeskKeys(stored, (on_disk,) if on_disk and on_disk != stored else ())


class KeyFileError(Exception):
    """The key file an earlier version left under data_dir cannot be used: the message says what to do."""


def _read(path: Path) -> str | None:
    """The key an earlier version kept at `path`, or None."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path} is not the key ticketd wrote (bytes beyond ASCII): delete it, or set "
                           "secret_key in ticketd.yaml") from None
    if not key:
        raise KeyFileError(f"{path} is empty: delete it, or set secret_key in ticketd.yaml")
    return key
