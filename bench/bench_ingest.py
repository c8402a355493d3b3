"""Bench (4): MQTT messages/s end-to-end through Mosquitto into feeds, none lost.

A real `python -m hub worker` (own process, as on the device) subscribes through a real
Mosquitto (dynamic security, as on the device); one publisher sends MESSAGES QoS 1
readings `emon/bench` {"p<k>": i, "time": …} spread over FEEDS inputs, each logging to its own
10 s PHPFina feed. The clock runs from the first publish until the worker has stored the last
reading in Redis (input last value); then SIGTERM makes the worker flush, and every feed file
is read back to check that every reading is on disk with its value (none lost).

Reference, same run, same broker and publisher: a bare paho subscriber that only counts the
messages (publish → subscribe with no processing). Target ≥ 5,000 msg/s.

    .venv/bin/python bench/bench_ingest.py
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, bench_hub, hub_env, logged_inputs
from devstack.servers import Servers

MESSAGES = 60_000
FEEDS = 50
PUBLISH_INFLIGHT = 200


def publisher(servers: Servers) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex}")
    client.username_pw_set(servers.mqtt_user, servers.mqtt_password)
    client.max_inflight_messages_set(PUBLISH_INFLIGHT)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", servers.mqtt_port)
    client.loop_start()
    return client


def messages(t0: int) -> list[tuple[str, bytes]]:
    return [("emon/bench", json.dumps({f"p{i % FEEDS}": i,
                                       "time": t0 + 10 * (i // FEEDS)}).encode())
            for i in range(MESSAGES)]


def publish(client: mqtt.Client, batch: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in batch]
    for info in infos:
        info.wait_for_publish(120)
    return start


def reference_rate(servers: Servers, batch: list[tuple[str, bytes]]) -> float:
    """Messages/s through the same broker to a subscriber that only counts them."""
    done = threading.Event()
    count = [0]

    def on_message(client, userdata, message) -> None:
        count[0] += 1
        if count[0] == len(batch):
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-ref-{uuid.uuid4().hex}")
    sub.username_pw_set(servers.mqtt_user, servers.mqtt_password)
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect("127.0.0.1", servers.mqtt_port)
    sub.loop_start()
    sub.subscribe("emon/#", qos=1)
    subscribed.wait(10)
    pub = publisher(servers)
    start = publish(pub, batch)
    done.wait(300)
    elapsed = time.perf_counter() - start
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return count[0] / elapsed


def main() -> None:
    with bench_hub("ingest", flush_interval=3600, redis_prefix="bench:",
                   mqtt_client_id="bench-worker") as (servers, ctx, root):
        config = ctx.config
        user = ctx.users.register("bench", "bench-password").id
        feeds = logged_inputs(ctx, user, "bench", FEEDS, "bench")
        t0 = (int(time.time()) - 10 * (MESSAGES // FEEDS) - 600) // 10 * 10
        batch = messages(t0)

        ref = reference_rate(servers, batch)
        print(f"reference: bare paho subscriber, {MESSAGES} QoS 1 messages: {ref:,.0f} msg/s")

        log = open(root / "worker.log", "wb")  # noqa: SIM115 - closed below
        worker = subprocess.Popen([sys.executable, "-m", "hub", "worker"], cwd=ROOT,
                                  env=hub_env(config), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                beat = ctx.redis.get(ctx.keys.worker_heartbeat)
                if beat and json.loads(beat)["mqtt_connected"]:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit("worker did not connect; see its log")
            _, last_input = feeds[(MESSAGES - 1) % FEEDS]
            last_key = ctx.keys.input_last(user)
            pub = publisher(servers)
            start = publish(pub, batch)
            published = time.perf_counter() - start
            expected = [t0 + 10 * ((MESSAGES - 1) // FEEDS), float(MESSAGES - 1)]
            while time.perf_counter() - start < 300:
                raw = ctx.redis.hget(last_key, str(last_input))
                if raw and json.loads(raw) == expected:
                    break
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
            pub.disconnect()
            pub.loop_stop()
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(120)
        finally:
            if worker.poll() is None:
                worker.kill()
            log.close()
        rate = MESSAGES / elapsed
        stored = 0
        wrong = 0
        for k, (feed, _) in enumerate(feeds):
            raw = np.fromfile(root / "data" / "feeds" / f"{feed}.dat", dtype="<f4")
            got = raw[~np.isnan(raw)]
            want = np.arange(k, MESSAGES, FEEDS, dtype=np.float32)
            stored += len(got)
            wrong += int(len(got) != len(want) or not np.array_equal(got, want))
        stats = {k.decode(): int(v) for k, v in
                 ctx.redis.hgetall(ctx.keys.worker_stats).items()}
        lost = MESSAGES - stored
        print(f"hub worker: {MESSAGES} messages into {FEEDS} feeds in {elapsed:.2f} s "
              f"(publisher done after {published:.2f} s): {rate:,.0f} msg/s")
        print(f"on disk after SIGTERM (exit {code}): {stored} of {MESSAGES} points, "
              f"{wrong} feeds differing, lost {lost}; worker stats {stats}")
        print(json.dumps({"bench": "ingest_mqtt_msgs_per_s", "value": round(rate),
                          "unit": "msg/s", "reference": round(ref)}))
        print(json.dumps({"bench": "ingest_mqtt_lost", "value": lost, "unit": "messages",
                          "reference": 0}))
        ctx.close()
        if lost or wrong or code:
            raise SystemExit("[ERROR] readings were lost or wrong")


if __name__ == "__main__":
    main()
