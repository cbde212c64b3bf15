"""Start `ticketd run` (or `ticketd worker`) as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TICKETD = [sys.executable, "-m", "ticketd.cli"]


class DaemonProcess:
    def __init__(self, config: Path, command: str = "run", log: Path | None = None) -> None:
        self.config = config
        self.command = command
        self.log = log or config.parent / f"{command}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen([*TICKETD, self.command, "--config", str(self.config)],
                                     stdout=self._fh, stderr=subprocess.STDOUT, env=env,
                                     cwd=Path(__file__).resolve().parents[1])
        ready = f"ticketd {'running' if self.command == 'run' else 'worker running'}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ticketd {self.command} exited {self.proc.returncode}:\n{self.output()}")
            if ready in self.output():
                return self
            time.sleep(0.05)
        raise TimeoutError(f"ticketd {self.command} did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if getattr(self, "_fh", None):
            self._fh.close()
