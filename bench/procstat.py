"""Resident memory of a process, from /proc (Linux), for the benchmarks."""

from __future__ import annotations

from pathlib import Path


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (resident at the peak so far) of `pid`, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields
