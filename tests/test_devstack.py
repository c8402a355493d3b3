"""`./build.sh dev` (devstack): a hub process that dies is restarted with backoff and its log
path is printed (issue 11 #14)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.servers import free_port
from devstack.supervise import BACKOFF_MIN_S, Child, Supervisor

ROOT = Path(__file__).resolve().parents[1]


def test_supervisor_restarts_a_crashing_child_with_backoff_and_shows_its_log(tmp_path):
    said: list[str] = []
    now = [0.0]
    child = Child("crasher", [sys.executable, "-c", "print('boom: bad config'); exit(3)"],
                  tmp_path / "crasher.log")
    sup = Supervisor([child], say=said.append, clock=lambda: now[0])
    sup.start()
    child.proc.wait(10)
    sup.check()
    assert sup.exits == [("crasher", 3)]
    report = said[-1]
    assert f"restarting in {BACKOFF_MIN_S:.0f} s" in report and str(child.log) in report
    assert "boom: bad config" in report  # the last lines of the log, right there
    sup.check()
    assert child.restarts == 0  # not before the backoff
    now[0] += BACKOFF_MIN_S
    sup.check()
    assert child.restarts == 1 and "started crasher" in said[-1]
    child.proc.wait(10)
    sup.check()
    assert "restarting in 2 s" in said[-1]  # doubled
    sup.stop()


def test_dev_stack_restarts_a_killed_worker_and_prints_log_paths(tmp_path):
    port = free_port()
    out = tmp_path / "dev.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "devstack", "--port", str(port)],
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def started_workers() -> list[int]:
        return [int(p) for p in re.findall(r"started hub worker \(pid (\d+)\)",
                                           out.read_text())]

    try:
        deadline = time.monotonic() + 120
        while not started_workers():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        text = out.read_text()
        log = re.search(r"started hub worker \(pid \d+\); log: (\S+)", text).group(1)
        assert Path(log).is_file() and "HUB_CONFIG=" in text
        os.kill(started_workers()[0], signal.SIGKILL)
        while len(started_workers()) < 2:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        text = out.read_text()
        assert f"exited with -9; restarting in 1 s. Log: {log}" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, out.read_text()
    assert "started hub web" in out.read_text()
