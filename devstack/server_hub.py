"""A second real hub as the community server, for the sync tests and bench: its own
Mosquitto, Redis and MariaDB (a `Servers`), data directory and `hub web` process, with feeds
hydro (a year of 10 s data), community, use_hh and unmapped (a year of half-hours each),
written straight through the engine (seconds, not hours of HTTP posts).

    with Servers.start(root) as servers:
        remote = start_remote(servers, root / "data")   # remote.url, remote.apikey
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from devstack.servers import free_port, hub_env
from hub.config import Config, load_config
from hub.context import HubContext
from hub.db import migrate

YEAR = 365 * 86400
HH = 1800
PASSWORD = "correct horse battery"


@dataclass
class RemoteHub:
    config: Config
    ctx: HubContext
    port: int
    apikey: str
    username: str
    feeds: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def files(self, name: str) -> tuple[bytes, bytes]:
        engine = self.ctx.feeds.engine
        feed_id = self.feeds[name]
        return (Path(engine.dat_path(feed_id)).read_bytes(),
                Path(engine.meta_path(feed_id)).read_bytes())

    def append(self, name: str, points: int, value: float = 1.5) -> None:
        """New data at the end of a feed, written through the engine (as a flush would)."""
        engine = self.ctx.feeds.engine
        feed_id = self.feeds[name]
        meta = engine.get_meta(feed_id)
        times = meta.end_time + meta.interval * np.arange(1, points + 1, dtype=np.float64)
        values = value + np.arange(points, dtype=np.float64) / 7
        engine.write_points(feed_id, np.column_stack([times, values]), now=times[-1])

    def overwrite_last(self, name: str, value: float) -> None:
        engine = self.ctx.feeds.engine
        feed_id = self.feeds[name]
        end = engine.get_meta(feed_id).end_time
        engine.write_points(feed_id, [(end, value)], now=end)


def fill_year(engine, feed_id: int, interval: int, end: int, seed: int) -> None:
    """A year of points ending at `end`, with a few NaN gaps, written in one batch."""
    n = YEAR // interval
    times = end - interval * np.arange(n, 0, -1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(2.0, 1.0, n), 3)
    values[rng.integers(0, n, n // 500)] = np.nan  # gaps are stored as NaN too
    keep = ~np.isnan(values)
    engine.write_points(feed_id, np.column_stack([times[keep], values[keep]]), now=end)


def start_remote(servers, data_dir: Path) -> RemoteHub:
    db_name = "server_hub"
    servers.create_database(db_name)
    overrides = servers.hub_settings(data_dir, db_name)
    overrides["redis_prefix"] = "server:"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(data_dir / "absent.toml", overrides=overrides, environ={})
    ctx = HubContext(config)
    migrate(ctx.db)
    user = ctx.users.register("household", PASSWORD)
    now = int(time.time())
    end = now - now % HH - 2 * 86400  # room for appended days, never in the future
    remote = RemoteHub(config, ctx, free_port(), user.apikey_read, user.username)
    for name, interval, seed in (("hydro", 10, 1), ("community", HH, 2), ("use_hh", HH, 3),
                                 ("unmapped", HH, 4)):
        feed = ctx.feeds.create(user.id, name, "cydynni", interval)
        fill_year(ctx.feeds.engine, feed.id, interval, end, seed)
        remote.feeds[name] = feed.id
    log = open(data_dir / "web.log", "ab")  # noqa: SIM115 - closed with the process
    remote.proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "web", "--host", "127.0.0.1", "--port",
         str(remote.port)], env=hub_env(config), stdout=log, stderr=subprocess.STDOUT)
    wait_port(remote.port, remote.proc)
    return remote


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")
