"""The MQTT worker against the real Mosquitto, Redis and MariaDB: readings to feeds on disk,
bad payloads, broker restarts, SIGTERM and SIGKILL of a real `python -m hub worker`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack.servers import hub_env, redis_argv
from hub.config import Config, load_config
from hub.context import HubContext
from hub.worker.loop import run_worker

ROOT = Path(__file__).resolve().parents[2]


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def worker_config(hub_config: Config, **overrides: object) -> Config:
    values = {**dict(hub_config), "mqtt_client_id": f"test-worker-{uuid.uuid4().hex[:8]}",
              **overrides}
    return load_config("/nonexistent.toml", overrides=values, environ={})


@contextmanager
def worker_thread(config: Config) -> Iterator[HubContext]:
    """run_worker in a thread of this process, stopped like SIGTERM stops it."""
    ctx = HubContext(config)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run_worker(ctx, stop)), daemon=True)
    thread.start()
    try:
        wait_until(lambda: connected(ctx), what="worker heartbeat with a broker connection")
        yield ctx
    finally:
        stop.set()
        thread.join(30)
        assert result == [0]
        ctx.close()


def connected(ctx: HubContext, pid: int | None = None) -> bool:
    beat = ctx.redis.get(ctx.keys.worker_heartbeat)
    state = json.loads(beat) if beat else {}
    return bool(state.get("mqtt_connected")) and pid in (None, state["pid"])


@contextmanager
def publisher(servers, client_id: str | None = None) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                         clean_session=client_id is None)
    client.username_pw_set(servers.mqtt_user, servers.mqtt_password)
    client.reconnect_delay_set(0.1, 1)
    client.connect("127.0.0.1", servers.mqtt_port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(client: mqtt.Client, messages: list[tuple[str, str]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(30)


def stats(ctx: HubContext) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in ctx.redis.hgetall(ctx.keys.worker_stats).items()}


def base_time(n: int) -> int:
    return (int(time.time()) - 10 * n - 600) // 10 * 10


def logged_feed(ctx: HubContext, user_id: int, node: str, name: str) -> int:
    """A 10 s feed that the input node/name logs to (input created by a first reading)."""
    from hub.input.readings import NodePost

    feed = ctx.feeds.create(user_id, f"{node}-{name}", interval=10).id
    ctx.inputs.ingest(user_id, [NodePost(node, 1_000_000_000, {name: 0.0})])  # an old reading
    found = next(i for i in ctx.inputs.list(user_id) if (i["nodeid"], i["name"]) == (node, name))
    ctx.inputs.set_processlist(user_id, found["id"], [{"fn": "log_to_feed", "args": [feed]}])
    return feed


def sequence(node: str, t0: int, n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"emon/{node}", json.dumps({"c": i, "time": t0 + 10 * i}))
            for i in range(start, start + n)]


def on_disk(ctx: HubContext, feed_id: int) -> list[float]:
    """The values in the .dat file itself, not merged with the Redis buffer."""
    import numpy as np

    raw = (Path(ctx.config.feed_dir) / f"{feed_id}.dat").read_bytes()
    values = np.frombuffer(raw, dtype="<f4")
    return [float(v) for v in values if not np.isnan(v)]


@pytest.fixture
def user_id(ctx) -> int:
    return ctx.users.register("owner", "correct horse").id  # id 1 = mqtt_user_id


# --- end to end -----------------------------------------------------------------------------

def test_mqtt_to_redis_to_disk_to_api(servers, hub_config, ctx, user_id, client):
    feed = logged_feed(ctx, user_id, "emontx", "power1")
    t = base_time(1)
    with worker_thread(worker_config(hub_config)), publisher(servers) as pub:
        assert client.get("/health.json").json()["ok"] is True
        publish_all(pub, [("emon/emontx/power1", "250.5"),
                          ("emon/emontx", json.dumps({"power1": 300, "time": t}))])
        # the value in Redis (input last value: the newest reading, not the last to arrive) …
        wait_until(lambda: stats(ctx).get("messages") == 2, what="both messages")
        assert ctx.inputs.tree(user_id)["emontx"]["power1"]["value"] == 250.5
        # … then in the feed file on disk after a flush (flush_interval is 1 s in tests)
        wait_until(lambda: len(on_disk(ctx, feed)) == 2, what="points flushed to disk")
        assert sorted(on_disk(ctx, feed)) == [250.5, 300.0]
        apikey = ctx.users.get(user_id).apikey_read
        rows = client.get("/feed/data.json", {"apikey": apikey, "id": feed, "start": t,
                                              "end": t + 10, "interval": 10}).json()
        assert rows[0] == [t * 1000, 300.0]  # emoncms answers ms
    assert stats(ctx)["messages"] == 2


def test_profiles_arrive_on_their_topics(servers, hub_config, ctx, user_id):
    start = int(time.time()) // 1800 * 1800
    body = json.dumps({"start": start, "interval": 1800, "values": [1.5, None, 3.0]})
    with worker_thread(worker_config(hub_config)), publisher(servers) as pub:
        publish_all(pub, [("cydynni/profile/hydro", body)])
        feed = wait_until(lambda: ctx.feeds.find(user_id, "hydro", "profile"), what="feed")
        wait_until(lambda: ctx.feeds.data(feed.id, start, start + 3600, 1800) == [
            [start, 1.5], [start + 1800, None], [start + 3600, 3.0]], what="profile values")


def test_bad_payloads_are_counted_and_do_not_kill_it(servers, hub_config, ctx, user_id):
    bad = [("emon/n/p", "nan"), ("emon/n", '{"p": NaN}'), ("emon/n", b"\xff\xfe"),
           ("emon/n", "[" * 50_000), ("emon/bad$node/p", "1"), ("emon/n", '{"time": "x"}'),
           ("emon/n", '{"p": {"q": {"r": 1}}}'), ("cydynni/profile/hydro", "{}"),
           ("cydynni/profile/solar", "{}"), ("emon/n", "")]
    with worker_thread(worker_config(hub_config)) as wctx, publisher(servers) as pub:
        publish_all(pub, [*bad, ("emon/n/ok", "1")])
        wait_until(lambda: "ok" in ctx.inputs.tree(user_id).get("n", {}), what="good reading")
        wait_until(lambda: stats(ctx).get("bad_payloads") == len(bad), what="bad count")
        assert connected(wctx)
    assert stats(ctx)["messages"] == len(bad) + 1
    assert stats(ctx).get("service_errors", 0) == 0


def test_readings_not_stored_are_counted_and_logged(servers, hub_config, ctx, user_id, caplog):
    """Issue 11 #11: a value no feed can hold is a bad payload; a reading whose process list
    logs to a deleted feed is counted as points_not_stored and logged, never silent."""
    feed = logged_feed(ctx, user_id, "gone", "c")
    ctx.feeds.delete(feed)
    with caplog.at_level("WARNING", logger="hub.worker.loop"), \
            worker_thread(worker_config(hub_config)), publisher(servers) as pub:
        publish_all(pub, [("emon/huge/p", "1e39"), ("emon/gone/c", "5")])
        wait_until(lambda: stats(ctx).get("bad_payloads") == 1, what="1e39 refused")
        wait_until(lambda: stats(ctx).get("points_not_stored") == 1, what="not stored counted")
    assert ctx.inputs.tree(user_id).get("huge") is None
    assert any("not stored" in r.getMessage() and f"feed {feed}" in r.getMessage()
               for r in caplog.records)


# --- QoS 1 across broker restarts -----------------------------------------------------------

def test_qos1_loses_nothing_across_a_broker_restart(servers, hub_config, ctx, user_id):
    n = 600
    feed = logged_feed(ctx, user_id, "q", "c")
    t0 = base_time(n)
    messages = sequence("q", t0, n)
    with worker_thread(worker_config(hub_config)) as wctx, \
            publisher(servers, f"test-pub-{uuid.uuid4().hex[:6]}") as pub:
        publish_all(pub, messages[:200])
        infos = [pub.publish(t, p, qos=1) for t, p in messages[200:400]]
        servers.restart_mosquitto()  # mid-stream
        infos += [pub.publish(t, p, qos=1) for t, p in messages[400:]]
        for info in infos:
            info.wait_for_publish(60)
        wait_until(lambda: connected(wctx), what="worker reconnects")
        wait_until(lambda: len([v for _, v in ctx.feeds.data(feed, t0, t0 + 10 * (n - 1), 10)
                                if v is not None]) == n, timeout=60, what="all readings")
    values = [v for _, v in ctx.feeds.data(feed, t0, t0 + 10 * (n - 1), 10)]
    assert values == [float(i) for i in range(n)]


def test_readings_sent_while_worker_and_broker_were_down_arrive(servers, hub_config, ctx,
                                                                user_id):
    """Persistent session: the broker queues QoS 1 readings for the absent worker, keeps them
    across its own restart, and delivers them when the worker is back."""
    n = 200
    feed = logged_feed(ctx, user_id, "away", "c")
    t0 = base_time(n)
    config = worker_config(hub_config)
    with worker_thread(config):
        pass  # the first connection creates the session and its subscriptions
    with publisher(servers) as pub:
        publish_all(pub, sequence("away", t0, n))
    servers.restart_mosquitto()
    with worker_thread(config):
        wait_until(lambda: len([v for _, v in ctx.feeds.data(feed, t0, t0 + 10 * (n - 1), 10)
                                if v is not None]) == n, timeout=60, what="queued readings")


# --- a real `hub worker` process: SIGTERM and SIGKILL ---------------------------------------

def worker_process(config: Config, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "hub", "worker"], cwd=ROOT,
                                env=hub_env(config),
                                stdout=out, stderr=subprocess.STDOUT)


def processed(ctx: HubContext, user_id: int, node: str, value: float) -> bool:
    found = ctx.inputs.tree(user_id).get(node, {}).get("c")
    return bool(found and found["value"] == value)


def test_sigterm_flushes_everything(servers, hub_config, ctx, user_id, tmp_path):
    n = 300
    feed = logged_feed(ctx, user_id, "term", "c")
    t0 = base_time(n)
    config = worker_config(hub_config, flush_interval=3600)  # only SIGTERM will flush
    proc = worker_process(config, tmp_path / "worker.log")
    try:
        wait_until(lambda: connected(ctx, proc.pid), what="worker up")
        with publisher(servers) as pub:
            publish_all(pub, sequence("term", t0, n))
        wait_until(lambda: processed(ctx, user_id, "term", n - 1), what="all processed")
        assert on_disk(ctx, feed) == []  # all still in the Redis buffer
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert on_disk(ctx, feed) == [float(i) for i in range(n)]
    assert ctx.feeds.buffer.pending_count() == 0
    assert ctx.redis.get(ctx.keys.worker_heartbeat) is None  # /health.json: worker down


def test_sigkill_leaves_readable_files_and_loses_only_the_unflushed_window(
        servers, hub_config, ctx, user_id, tmp_path):
    n = 100
    feed = logged_feed(ctx, user_id, "kill", "c")
    t0 = base_time(2 * n)
    config = worker_config(hub_config, flush_interval=1)
    proc = worker_process(config, tmp_path / "worker.log")
    try:
        wait_until(lambda: connected(ctx, proc.pid), what="worker up")
        with publisher(servers) as pub:
            publish_all(pub, sequence("kill", t0, n))  # batch A
            wait_until(lambda: len(on_disk(ctx, feed)) == n, what="batch A flushed")
            publish_all(pub, sequence("kill", t0, n, start=n))  # batch B
            wait_until(lambda: processed(ctx, user_id, "kill", 2 * n - 1), what="B processed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the files are whole and readable: A is on disk; whatever of B is not is in Redis
    disk = on_disk(ctx, feed)
    assert disk[:n] == [float(i) for i in range(n)]
    meta = ctx.feeds.engine.get_meta(feed)
    assert meta.interval == 10 and meta.npoints * 4 == (Path(config.feed_dir) /
                                                        f"{feed}.dat").stat().st_size
    pending = [float(v) for v in ctx.feeds.buffer.pending(feed)[:, 1]] \
        if ctx.feeds.buffer.pending(feed).size else []
    assert sorted(set(disk) | set(pending)) == [float(i) for i in range(2 * n)]
    # reads merge the buffer, so nothing is missing to the API either
    values = [v for _, v in ctx.feeds.data(feed, t0, t0 + 10 * (2 * n - 1), 10)]
    assert values == [float(i) for i in range(2 * n)]
    # Redis still holds the unflushed window; the next worker writes it out
    again = worker_process(worker_config(hub_config, flush_interval=3600),
                           tmp_path / "worker2.log")
    try:
        wait_until(lambda: connected(ctx, again.pid), what="second worker up")
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    finally:
        if again.poll() is None:
            again.kill()
    assert on_disk(ctx, feed) == [float(i) for i in range(2 * n)]


# --- Redis going away -----------------------------------------------------------------------

def start_redis(port: int, log: Path) -> subprocess.Popen:
    """A private Redis configured as on the device (devstack.servers.redis_argv)."""
    data = log.parent / "redis-data"
    data.mkdir(exist_ok=True)
    proc = subprocess.Popen(redis_argv(port, data), stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    import redis

    wait_until(lambda: _pings(redis.Redis(port=port)), what="private redis")
    return proc


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_readings_wait_while_redis_is_down(servers, hub_config, user_id, tmp_path):
    """Readings that cannot be stored are not acknowledged; they are stored once Redis is
    back (this test's own Redis, so stopping it disturbs nobody else)."""
    from devstack.servers import free_port

    n = 50
    port = free_port()
    redis_proc = start_redis(port, tmp_path / "redis.log")
    config = worker_config(hub_config, redis_port=port)
    own = HubContext(config)
    try:
        feed = logged_feed(own, user_id, "r", "c")
        t0 = base_time(2 * n)
        with worker_thread(config), publisher(servers) as pub:
            publish_all(pub, sequence("r", t0, n))
            wait_until(lambda: len(on_disk(own, feed)) == n, what="first half on disk")
            redis_proc.terminate()
            redis_proc.wait(10)
            publish_all(pub, sequence("r", t0, n, start=n))  # the broker has them (QoS 1)
            time.sleep(2)  # the worker retries meanwhile
            redis_proc = start_redis(port, tmp_path / "redis.log")
            wait_until(lambda: len(on_disk(own, feed)) == 2 * n, timeout=30,
                       what="second half stored after Redis came back")
        assert on_disk(own, feed) == [float(i) for i in range(2 * n)]
        assert stats(own)["store_retries"] >= 1
    finally:
        own.close()
        redis_proc.terminate()
        redis_proc.wait(10)


@contextmanager
def private_redis(hub_config: Config, tmp_path: Path, **overrides: object):
    """A worker config on a Redis of its own (so restarting it disturbs nobody else)."""
    from devstack.servers import free_port

    port = free_port()
    procs = [start_redis(port, tmp_path / "redis.log")]
    config = worker_config(hub_config, redis_port=port, **overrides)
    own = HubContext(config)

    def restart(kill: bool = False) -> None:
        procs[0].send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        procs[0].wait(30)
        procs[0] = start_redis(port, tmp_path / "redis.log")

    try:
        yield config, own, restart
    finally:
        own.close()
        procs[0].terminate()
        procs[0].wait(30)


def test_a_redis_restart_loses_nothing_and_is_reported(servers, hub_config, user_id,
                                                       tmp_path, caplog):
    """Issue 11 #10: a stop/start of Redis (SIGTERM, as systemctl does) keeps the unflushed
    feed buffer and the sessions; the worker logs and counts the restart."""
    n = 300
    with private_redis(hub_config, tmp_path, flush_interval=3600) as (config, own, restart):
        feed = logged_feed(own, user_id, "rr", "c")
        session = own.redis.set("hub-test-session", "kept")
        t0 = base_time(2 * n)
        with caplog.at_level("WARNING", logger="hub.worker.loop"), \
                worker_thread(config), publisher(servers) as pub:
            publish_all(pub, sequence("rr", t0, n))
            wait_until(lambda: processed(own, user_id, "rr", n - 1), what="first half")
            assert on_disk(own, feed) == []  # all of it only in Redis
            restart()
            publish_all(pub, sequence("rr", t0, n, start=n))
            wait_until(lambda: processed(own, user_id, "rr", 2 * n - 1), what="second half")
            wait_until(lambda: stats(own).get("redis_restarts") == 1, what="restart counted")
        assert session and own.redis.get("hub-test-session") == b"kept"
        assert on_disk(own, feed) == [float(i) for i in range(2 * n)]
        assert "redis_came_back_empty" not in stats(own)
    assert any("kept its data" in r.getMessage() for r in caplog.records)


def test_a_redis_crash_is_reported_as_data_lost(servers, hub_config, user_id, tmp_path,
                                                caplog):
    with private_redis(hub_config, tmp_path) as (config, own, restart):
        with caplog.at_level("WARNING", logger="hub.worker.loop"), worker_thread(config):
            restart(kill=True)
            wait_until(lambda: stats(own).get("redis_came_back_empty") == 1, what="counted")
        assert stats(own)["redis_restarts"] == 1
    assert any(r.levelname == "ERROR" and "came back EMPTY" in r.getMessage()
               for r in caplog.records)


def test_a_full_redis_refuses_readings_until_it_has_room(servers, hub_config, user_id,
                                                         tmp_path, caplog):
    """maxmemory reached (noeviction, as on the device: a long full disk stops the flushes):
    readings are not acknowledged and dropped but retried, and stored once there is room."""
    n = 50
    with private_redis(hub_config, tmp_path) as (config, own, _restart):
        feed = logged_feed(own, user_id, "oom", "c")
        t0 = base_time(n)
        with caplog.at_level("ERROR", logger="hub.worker.loop"), \
                worker_thread(config), publisher(servers) as pub:
            own.redis.config_set("maxmemory-policy", "noeviction")
            own.redis.config_set("maxmemory", "1")  # every write now answers OOM
            publish_all(pub, sequence("oom", t0, n))
            wait_until(lambda: any("cannot store readings" in r.getMessage() and "maxmemory" in
                                   r.getMessage() for r in caplog.records),
                       what="the worker refuses and retries")
            own.redis.config_set("maxmemory", "0")
            wait_until(lambda: len([v for _, v in own.feeds.data(feed, t0, t0 + 10 * (n - 1),
                                                                 10) if v is not None]) == n,
                       timeout=30, what="all readings stored once Redis has room")
        assert stats(own)["store_retries"] >= 1
        assert stats(own).get("service_errors", 0) == 0


# --- misbehaving services and missing users -------------------------------------------------

class ExplodingService:
    """A service that fails in every way a service can; the worker must shrug it off."""

    def __init__(self, ctx, publish) -> None:
        self.publish = publish

    def topics(self) -> list[str]:
        return ["test/boom/#"]

    def on_connect(self) -> None:
        raise RuntimeError("on_connect failed")

    def on_message(self, topic: str, payload: bytes) -> None:
        raise RuntimeError(f"cannot handle {topic}")

    def tick(self, now: float) -> None:
        raise RuntimeError("tick failed")

    def stop(self) -> None:
        raise RuntimeError("stop failed")


class UnbuildableService:
    def __init__(self, ctx, publish) -> None:
        raise RuntimeError("constructor failed")


def test_service_exceptions_are_counted_and_do_not_stop_the_worker(
        servers, hub_config, ctx, user_id, monkeypatch):
    import hub.worker.loop
    from hub.worker.ingest import IngestService

    monkeypatch.setattr(hub.worker.loop, "SERVICES", (
        IngestService, ExplodingService, UnbuildableService, UnbuildableService))
    with worker_thread(worker_config(hub_config)), publisher(servers) as pub:
        publish_all(pub, [("test/boom/x", "1"), ("test/boom/y", "2"), ("emon/n/ok", "3")])
        wait_until(lambda: "ok" in ctx.inputs.tree(user_id).get("n", {}), what="ingest works")
        wait_until(lambda: stats(ctx).get("service_errors", 0) >= 6, what="errors counted")
    # 2 services that could not start, on_connect, 2 messages, at least one tick, stop
    assert stats(ctx)["service_errors"] >= 7


def test_readings_for_a_user_that_does_not_exist_are_dropped_and_counted(
        servers, hub_config, ctx):
    config = worker_config(hub_config, mqtt_user_id=999)
    with worker_thread(config) as wctx, publisher(servers) as pub:
        publish_all(pub, [("emon/n/p", "1")])
        wait_until(lambda: stats(ctx).get("bad_payloads") == 1, what="counted")
        assert connected(wctx)
    assert ctx.inputs.list(999) == []
