"""Resident memory and CPU time of processes, and how busy the machine is, from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (resident at the peak so far) of `pid`, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used so far, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (proc(5) fields 14, 15)


def with_descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found = [pid]
    for p in found:
        found.extend(child for child, parent in parents.items() if parent == p)
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICKS, sum(values[:8]) / _TICKS
