"""Build log: timestamped Begin/End lines on the terminal and in the log file; command output
goes to the log file only, so the terminal shows progress and the file shows everything."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_log_path: Path | None = None
_in_step = False  # a stage step's subprocess: stdout already goes to the log


def open_log(path: Path) -> None:
    """Start a fresh log file; later calls to info()/run() append to it."""
    global _log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    _log_path = path


def attach_log(path: Path) -> None:
    """Append to an existing log (used by stage subprocesses; the runner echoes progress)."""
    global _log_path, _in_step
    _log_path = path
    _in_step = True


def log_path() -> Path | None:
    return _log_path


def line_count() -> int:
    if _log_path is None or not _log_path.exists():
        return 0
    with _log_path.open("rb") as handle:
        return sum(1 for _ in handle)


def _write(text: str) -> None:
    if _log_path is not None:
        with _log_path.open("a") as handle:
            handle.write(text + "\n")


def info(message: str, *, terminal: bool = True) -> None:
    stamped = f"[{time.strftime('%H:%M:%S')}] {message}"
    _write(stamped)
    if terminal and not _in_step:
        print(stamped, flush=True)


def error(message: str) -> None:
    stamped = f"[{time.strftime('%H:%M:%S')}] [ERROR] {message}"
    _write(stamped)
    print(stamped, file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
    check: bool = True, stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command with stdout+stderr appended to the log (or inherited without a log)."""
    info("$ " + " ".join(str(part) for part in cmd), terminal=False)
    if _log_path is None:
        return subprocess.run(list(map(str, cmd)), env=env, cwd=cwd, check=check, stdin=stdin)
    with _log_path.open("ab") as handle:
        return subprocess.run(
            list(map(str, cmd)), env=env, cwd=cwd, check=check, stdin=stdin,
            stdout=handle, stderr=subprocess.STDOUT,
        )


def output(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
) -> str:
    """Run a command and return its stdout; stderr goes to the log."""
    info("$ " + " ".join(str(part) for part in cmd), terminal=False)
    result = subprocess.run(
        list(map(str, cmd)), env=env, cwd=cwd, check=True, capture_output=True, text=True,
    )
    if result.stderr:
        _write(result.stderr.rstrip())
    return result.stdout
