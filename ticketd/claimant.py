"""Who holds a claim: this process's name, and whether the process a name stands for has ended."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

# A worker killed mid-send (SIGKILL, the OOM killer, a crash) leaves the
# outbox rows it claimed `sending`; only the claim's lease took them back,
# 10x the SMTP timeout later (5 min by default), while status stayed green.
# A claim that names its process can be taken back at the next sweep once
# that process is certainly gone: on the same running kernel (boot id) and
# in the same pid namespace (two containers may share a host name and a
# pid), its pid no longer runs, or runs a process started at another time
# (the pid was reused). Anywhere else nothing is certain: the lease decides.

_UNKNOWN = "-"


@dataclass(frozen=True)
class ProcessName:
    """A process as a claim names it: `host:pid:boot:pid-namespace:start-time` (host for people, the rest for us)."""

    host: str
    pid: int
    boot: str
    pid_namespace: str
    started: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.boot}:{self.pid_namespace}:{self.started}"

    @classmethod
    def parse(cls, text: str) -> ProcessName | None:
        """The name written by `__str__`; None for anything else (a claim from before names were kept)."""
        parts = text.rsplit(":", 4)
        if len(parts) != 5 or not parts[1].isdigit():
            return None
        host, pid, boot, namespace, started = parts
        return cls(host, int(pid), boot, namespace, started)

    @property
    def comparable(self) -> bool:
        return _UNKNOWN not in (self.boot, self.pid_namespace, self.started)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _boot() -> str:
    # Linux: a random id per boot; without it nothing here is compared.
    return (_read("/proc/sys/kernel/random/boot_id") or _UNKNOWN).replace("-", "")[:16] or _UNKNOWN


def _pid_namespace() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")   # "pid:[4026531836]"
    except OSError:
        return _UNKNOWN
    found = re.search(r"\d+", link)
    return found.group() if found else _UNKNOWN


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, proc(5) stat field 22); None if it does not run."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):   # a zombie has ended: it waits only for its parent's wait()
        return None
    return fields[19]


_names: dict[int, str] = {}   # by pid: a forked child is another process


def this_process() -> str:
    """This process's name, for the claims it makes."""
    pid = os.getpid()
    if pid not in _names:
        _names[pid] = str(ProcessName(socket.gethostname(), pid, _boot(), _pid_namespace(),
                                      start_time(pid) or _UNKNOWN))
    return _names[pid]


def has_ended(name: str) -> bool:
    """True only when the process `name` stands for is certainly not running; False when in doubt."""
    other = ProcessName.parse(name)
    here = ProcessName.parse(this_process())
    if other is None or here is None or not (other.comparable and here.comparable):
        return False
    if (other.boot, other.pid_namespace) != (here.boot, here.pid_namespace):
        return False   # another machine, another boot, another container: its pids are not ours to look at
    return start_time(other.pid) != other.started
