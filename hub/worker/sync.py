"""SyncService: runs the server sync (hub/sync/) from the worker, in a thread.

The worker's main loop only calls `tick()`, which decides and starts; the run itself (HTTP and
file writes) happens in one background thread, so MQTT ingest never waits for the server.
One run at a time (the thread, and the sync lock across processes). A run starts when:
- a provisioning request from cydynni.txt is waiting (it is checked first);
- the API asked for one (`sync/run.json` leaves a `run-now` file);
- `next_run` has come: `sync_interval` after a good run, `sync_retry_min` doubling per
  failure up to `sync_retry_max` after a failed one, `sync_retry_min` when the byte cap left
  more to fetch.
Only an API request runs in the first `sync_start_delay` seconds after the worker starts:
the rest (provisioning, resuming, a run that fell due while the hub was off) is boot work
that can wait until the hub is ready. The first run loads the feed engine and numpy, which
competed with the web and the worker's first heartbeat for the guest's CPU at every boot.
The service subscribes to no topics. `stop()` asks the run to stop between chunks (a full
download keeps its checkpoint and resumes next time).
"""

from __future__ import annotations

import logging
import threading
import time

from hub.context import HubContext
from hub.sync.store import SyncBusy

log = logging.getLogger(__name__)

STOP_WAIT_S = 15.0
BUSY_WAIT_S = 30.0  # another process (hub admin sync) holds the lock


class SyncService:
    def __init__(self, ctx: HubContext, publish) -> None:
        self.ctx = ctx
        self.store = ctx.sync
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.busy_until = 0.0
        self.quiet_until = time.time() + ctx.config.sync_start_delay
        self.first_tick = True  # the first tick after the quiet start

    def topics(self) -> list[str]:
        return []

    def on_message(self, topic: str, payload: bytes) -> None:  # subscribes to nothing
        pass

    def tick(self, now: float) -> None:
        if self.stopping.is_set() or (self.thread and self.thread.is_alive()):
            return
        due = self._due(now)
        if not due:
            return
        self.thread = threading.Thread(target=self._run, name="hub-sync", daemon=True)
        self.thread.start()

    def _due(self, now: float) -> bool:
        if now < self.busy_until:
            return False
        if self.store.take_run_request():
            self.first_tick = False
            return True
        if now < self.quiet_until:
            return False
        first, self.first_tick = self.first_tick, False
        status = self.store.status()
        if self.store.link() is None and self.store.pending_request() is None:
            return False
        if first and self.store.has_partial():
            return True  # a download that died with its process: resume it now
        return now >= float(status.get("next_run", 0) or 0)

    def _run(self) -> None:
        try:
            # Imported by the first run: a hub without the server link never loads the
            # sync code or its HTTP client (~0.6 MB of the worker's RSS).
            from hub.sync.run import sync_once

            status = sync_once(self.ctx, self.stopping.is_set)
            log.info("sync: %s", status.get("message", ""))
        except SyncBusy:
            log.info("sync: another run is in progress")
            self.busy_until = time.time() + BUSY_WAIT_S
        except Exception:
            log.exception("sync run crashed")
        finally:
            self.ctx.db.close()  # this thread's own MariaDB connection (they are per thread)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread and self.thread.is_alive():
            self.thread.join(STOP_WAIT_S)
