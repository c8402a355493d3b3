"""Bench: server sync against `curl` fetching the same export bytes, and bytes written per point.

A second real hub serves a year of 10 s data (devstack/server_hub.py); the local hub syncs it
over loopback through `hub.sync` (the same code the worker runs).
- full sync of the year of 10 s data (12.6 MB): seconds, against `curl` downloading the same
  `feed/export.json` bytes to a file in the same run (goal: <= 1.2x curl);
- an incremental day (8,640 points): the same comparison for the tail;
- bytes written per synced point (goal: <= 4.1), at the file level (every byte the sync
  passes to a file write: partial file, checkpoint notes, engine append or meta swap, the
  status file; as bench_feed_write_bytes counts) and at the page level (/proc/self/io
  write_bytes: whole 4 KiB pages the kernel accounts to this process), against the 4 bytes a
  point occupies in the .dat.
Best of REPEAT runs each. Run: `./build.sh bench sync`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import bench_hub
from devstack.server_hub import start_remote
from devstack.servers import Servers
from hub.sync.run import sync_once
from hub.sync.store import ProvisionRequest

REPEAT = 3
DAY_POINTS = 8640


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def curl(url: str, apikey: str, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sSf", "-o", str(out), "-H", f"Authorization: Bearer {apikey}",
                    url], check=True)
    return time.perf_counter() - started


def timed_sync(ctx) -> tuple[float, dict, int, int]:
    """(seconds, status, bytes passed to file writes, bytes the kernel accounted to storage
    for this process, whole pages)."""
    os.sync()
    pages_before = write_bytes()
    files_before = ctx.sync.bytes_written + ctx.feeds.engine.bytes_written
    started = time.perf_counter()
    status = sync_once(ctx)
    elapsed = time.perf_counter() - started
    assert status["last_run"]["ok"], status
    files = ctx.sync.bytes_written + ctx.feeds.engine.bytes_written - files_before
    return elapsed, status, files, write_bytes() - pages_before


def figure(name: str, value: float, unit: str, reference: float) -> None:
    print(json.dumps({"bench": name, "value": round(value, 4), "unit": unit,
                      "reference": round(reference, 4)}))


def main() -> None:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sync-server-"))
        (Path(tmp) / "servers").mkdir()
        server_servers = stack.enter_context(Servers.start(Path(tmp) / "servers"))
        _, ctx, _ = stack.enter_context(bench_hub("sync"))
        remote = start_remote(server_servers, Path(tmp) / "data")
        try:
            user = ctx.users.register("home", "correct horse battery")
            ctx.sync.provision(ProvisionRequest(url=remote.url, apikey=remote.apikey,
                                                allow_http=True, user_id=user.id))
            hydro = remote.feeds["hydro"]
            size = len(remote.files("hydro")[0])
            export = f"{remote.url}feed/export.json?id={hydro}&start="
            full_sync, full_curl, full_written, full_pages = [], [], [], []
            ctx.sync.set_rules([{"remote_tag": "*", "remote_name": "hydro",
                                 "local_name": "hydro"}])
            for _ in range(REPEAT):  # a new local mirror each time: a full download
                for local_id in ctx.sync.mirrors().values():
                    ctx.feeds.delete(local_id)
                ctx.sync.path("mirrors.json").unlink(missing_ok=True)
                elapsed, status, written, pages = timed_sync(ctx)
                assert status["feeds"][0]["mode"] == "full"
                full_sync.append(elapsed)
                full_written.append(written)
                full_pages.append(pages)
                full_curl.append(curl(export + "0", remote.apikey, Path(tmp) / "full.dat"))
            assert (Path(tmp) / "full.dat").stat().st_size == size
            points = size // 4
            print(f"full year of 10 s data ({size / 1e6:.1f} MB): sync {min(full_sync):.3f} s, "
                  f"curl {min(full_curl):.3f} s")
            figure("sync_full_year_10s_s", min(full_sync), "s", min(full_curl))
            figure("sync_full_bytes_written_per_point", min(full_written) / points,
                   "bytes/point", size / points)
            figure("sync_full_page_bytes_per_point", min(full_pages) / points,
                   "bytes/point", size / points)

            tail_sync, tail_curl, tail_written, tail_pages = [], [], [], []
            for _ in range(REPEAT):
                local_size = len(remote.files("hydro")[0])
                remote.append("hydro", DAY_POINTS)
                elapsed, status, written, pages = timed_sync(ctx)
                feed = status["feeds"][0]
                assert (feed["mode"], feed["bytes"]) == ("tail", DAY_POINTS * 4), feed
                tail_sync.append(elapsed)
                tail_written.append(written)
                tail_pages.append(pages)
                tail_curl.append(curl(export + str(local_size), remote.apikey,
                                      Path(tmp) / "tail.dat"))
            print(f"incremental day ({DAY_POINTS} points): sync {min(tail_sync) * 1000:.1f} ms,"
                  f" curl {min(tail_curl) * 1000:.1f} ms")
            figure("sync_incremental_day_s", min(tail_sync), "s", min(tail_curl))
            figure("sync_tail_bytes_written_per_point", min(tail_written) / DAY_POINTS,
                   "bytes/point", 4.0)
            figure("sync_tail_page_bytes_per_point", min(tail_pages) / DAY_POINTS,
                   "bytes/point", 4.0)
        finally:
            remote.proc.terminate()
            remote.proc.wait(20)


if __name__ == "__main__":
    main()
