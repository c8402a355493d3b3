"""SIGKILL of the worker in the middle of a transfer: the local feed is untouched, and the next
run resumes from the last checkpoint and ends byte for byte equal to the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.servers import hub_env
from hub.sync.run import CHECKPOINT_BYTES, sync_once
from tests.sync.conftest import local_files, mapped


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_transfer_then_a_new_run_gives_the_same_bytes(linked, remote, proxy,
                                                                   tmp_path):
    proxy.rate = 1_500_000  # ~8 s for the year of 10 s data: time to kill it midway
    linked.sync.request_run()
    env = hub_env({**linked.config, "mqtt_client_id": f"sync-kill-{os.getpid()}"})
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        local_id = wait_for(lambda: linked.sync.mirrors().get(remote.feeds["hydro"]), 60,
                            "the hydro mirror")
        info = Path(linked.feeds.engine.datadir) / f"{local_id}.sync.json"

        def checkpointed() -> int:
            try:
                return json.loads(info.read_text())["verified"] >= CHECKPOINT_BYTES
            except (OSError, ValueError, KeyError):
                return 0

        wait_for(checkpointed, 60, "a checkpoint of the hydro download")
        time.sleep(0.7)  # well past the checkpoint, mid-chunk
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    partial = Path(linked.feeds.engine.dat_path(local_id) + ".sync")
    assert partial.stat().st_size > CHECKPOINT_BYTES
    assert os.path.getsize(linked.feeds.engine.dat_path(local_id)) == 0  # untouched
    assert linked.sync.status()["state"] == "running"  # the killed run; the next resumes it

    proxy.rate = 0
    proxy.export_bytes = 0
    status = sync_once(linked)
    assert status["last_run"]["ok"], status
    for name in mapped(linked, remote):
        assert local_files(linked, remote, name) == remote.files(name)
    hydro = next(f for f in status["feeds"] if f["name"] == "hydro")
    full = len(remote.files("hydro")[0])
    assert hydro["mode"] == "full" and hydro["bytes"] <= full - CHECKPOINT_BYTES  # resumed
    assert not partial.exists()
