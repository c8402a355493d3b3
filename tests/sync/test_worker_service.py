"""The worker runs syncs in the background: MQTT readings are stored while a slow transfer is
going, a run-now request starts one, and a stop ends it at a checkpoint that resumes."""

from __future__ import annotations

import subprocess
import sys
import time

from hub.config import Config
from hub.context import HubContext
from hub.worker.sync import SyncService
from tests.hub.test_worker import processed, publish_all, publisher, worker_config, worker_thread
from tests.sync.conftest import local_files, mapped


def test_ingest_is_not_blocked_by_a_running_sync(servers, linked, household, remote, proxy):
    proxy.rate = 1_000_000  # ~13 s for the year of 10 s data
    linked.sync.request_run()
    with worker_thread(worker_config(linked.config)) as wctx, publisher(servers) as pub:
        deadline = time.monotonic() + 30
        while (linked.sync.progress() or {}).get("state") != "running":
            assert time.monotonic() < deadline, "no sync started"
            time.sleep(0.1)
        for value in (1.0, 2.0, 3.0):
            sent = time.monotonic()
            publish_all(pub, [("emon/meter/c", str(value))])
            while not processed(wctx, 1, "meter", value):
                assert time.monotonic() - sent < 5, "ingest waited for the sync"
                time.sleep(0.05)
        assert (linked.sync.progress() or {}).get("state") == "running"  # still syncing
        deadline = time.monotonic() + 90
        while linked.sync.status().get("last_run", {}).get("ok") is not True:
            assert time.monotonic() < deadline, linked.sync.status()
            time.sleep(0.2)
    for name in mapped(linked, remote):
        assert local_files(linked, remote, name) == remote.files(name)


def test_the_worker_loads_the_sync_code_only_for_a_run():
    """A hub without the server link never pays for the sync code (issue 12: memory); the
    runs above import it in their thread."""
    code = ("import sys; import hub.cli, hub.worker.loop; "
            "print('hub.sync.run' in sys.modules, 'hub.worker.sync' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "True"], result.stdout + result.stderr


def test_automatic_runs_wait_for_the_quiet_start_but_an_api_run_does_not(linked):
    """After a (re)start the worker leaves its first automatic run (here: due at once, the
    link is new) until `sync_start_delay` has passed: boot work that can wait until the hub
    is ready (issue 12). A run asked for through the API starts at once."""
    ctx = HubContext(Config({**linked.config, "sync_start_delay": 60}, linked.config.source))
    try:
        service = SyncService(ctx, publish=None)
        started = service.quiet_until - 60
        assert SyncService(linked, publish=None)._due(time.time() + 1)  # no delay: due
        assert not service._due(started + 1)
        assert not service._due(started + 59)
        ctx.sync.request_run()
        assert service._due(started + 2)
        assert not ctx.sync.take_run_request()  # the request was taken by that run
        assert service._due(started + 60)
    finally:
        ctx.close()
