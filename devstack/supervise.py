"""Keep `hub web` and `hub worker` running for `./build.sh dev`: a process that exits is
started again after a backoff (1 s, doubling to 30 s; back to 1 s once it has run a minute),
and every exit is reported with the path of its log and the log's last lines."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
HEALTHY_AFTER_S = 60.0  # a process that ran this long starts again at the minimum backoff
TAIL_LINES = 15


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_MIN_S
    restart_at: float | None = None
    restarts: int = 0

    def start(self, say: Callable[[str], None]) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(list(self.argv), env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()
        self.restart_at = None
        say(f"[INFO] started {self.name} (pid {self.proc.pid}); log: {self.log}")


@dataclass
class Supervisor:
    children: list[Child]
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    exits: list[tuple[str, int]] = field(default_factory=list)

    def start(self) -> None:
        for child in self.children:
            child.start(self.say)

    def check(self) -> None:
        """Call often: notices exits and restarts children whose backoff has passed."""
        now = self.clock()
        for child in self.children:
            if child.proc is not None and child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                self.exits.append((child.name, code))
                if now - child.started >= HEALTHY_AFTER_S:
                    child.backoff = BACKOFF_MIN_S
                child.restart_at = now + child.backoff
                last = tail(child.log)
                self.say(f"[ERROR] {child.name} (pid {child.proc.pid}) exited with {code}; "
                         f"restarting in {child.backoff:.0f} s. Log: {child.log}"
                         + (f"\n----- last lines of {child.log} -----\n{last}\n-----"
                            if last else ""))
                child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                child.start(self.say)

    def stop(self, timeout: float = 30) -> None:
        running = [c.proc for c in self.children if c.proc and c.proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
