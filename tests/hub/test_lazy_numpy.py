"""`hub web` and `hub worker` load numpy (~12 MB RSS) only when a feed is read or written or
a smart schedule planned (issue 12).

A real `python -m hub web` against the test servers: after routes that read no feed (health,
inputs, the login page, a schedule-free device list) numpy's core extension is not mapped
into the process; the first feed read loads it and answers the stored points. A real
`python -m hub worker`: connected, ticking and storing a reading for an input that logs to
no feed without numpy; the first reading for a logged feed loads it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hub.input.readings import NodePost
from tests.client import Client
from tests.hub.test_worker import (
    base_time,
    connected,
    logged_feed,
    on_disk,
    processed,
    publish_all,
    publisher,
    sequence,
    wait_until,
    worker_config,
    worker_process,
)


def numpy_mapped(pid: int) -> bool:
    return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture
def hub_web(hub_web_process):
    proc, port, _log = hub_web_process
    return proc, Client("127.0.0.1", port)


def test_web_loads_numpy_on_the_first_feed_read(ctx, hub_web):
    proc, client = hub_web
    user = ctx.users.register("alice", "alices-long-password")
    feed = ctx.feeds.create(user.id, "power", interval=10)
    t0 = (int(time.time()) - 3600) // 10 * 10
    ctx.feeds.insert_many(feed.id, [t0 + 10 * i for i in range(6)], [1.0, 2, 3, 4, 5, 6])
    ctx.feeds.flush()
    ctx.inputs.ingest(user.id, [NodePost("house", t0, {"power": 5.0})])
    key = {"apikey": user.apikey_read}

    health = client.request("GET", "/health.json")  # no worker runs here: 503, and says so
    assert health.status == 503 and "worker" in health.text
    inputs = client.request("GET", "/input/list.json", params=key)
    assert [i["name"] for i in inputs.json()] == ["power"]
    assert client.request("GET", "/input/get.json", params=key).json()["house"]["power"][
        "value"] == 5.0
    assert client.request("GET", "/login").status == 200
    assert not numpy_mapped(proc.pid), "a route that reads no feed imported numpy"

    rows = client.request("GET", "/feed/data.json", params={
        **key, "id": feed.id, "start": t0, "end": t0 + 50, "interval": 10}).json()
    assert [v for _, v in rows] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert numpy_mapped(proc.pid)


def test_worker_loads_numpy_on_the_first_feed_write(servers, hub_config, ctx, tmp_path):
    user_id = ctx.users.register("owner", "correct horse").id  # id 1 = mqtt_user_id
    feed = logged_feed(ctx, user_id, "house", "c")
    proc = worker_process(worker_config(hub_config, flush_interval=1), tmp_path / "worker.log")
    try:
        wait_until(lambda: connected(ctx, proc.pid), timeout=60, what="worker up")
        with publisher(servers) as pub:
            publish_all(pub, [("emon/shed", json.dumps({"c": 7}))])  # logs to no feed
            wait_until(lambda: processed(ctx, user_id, "shed", 7), what="input stored")
            time.sleep(3)  # ticks (schedules planned: none), flushes (nothing pending)
            assert not numpy_mapped(proc.pid), "the MQTT loop imported numpy"
            t0 = base_time(3)
            publish_all(pub, sequence("house", t0, 3))
            wait_until(lambda: on_disk(ctx, feed) == [0.0, 1.0, 2.0], what="feed written")
        assert numpy_mapped(proc.pid)
    finally:
        proc.kill()
        proc.wait(30)
