"""Free ports for the servers the tests start, outside the range the kernel hands out to client sockets."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# A port the kernel gave us for a moment (bind to 0) is in its ephemeral range: by the time a server binds
# it, an outgoing connection of another test (to PostgreSQL, Redis, a sink) may hold it ("address already
# in use"). Below that range only our own servers take ports; a random pick keeps the xdist workers apart.
_LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768   # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, below the ephemeral range when there is room."""
    top = _ephemeral_start()
    for _ in range(200) if top - _LOWEST > 1000 else ():
        port = random.randrange(_LOWEST, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:   # no room below the range: the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
