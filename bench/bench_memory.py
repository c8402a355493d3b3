"""Bench (5): resident memory (VmRSS) of `hub web` and `hub worker` with 50 feeds after a
simulated day.

Both run as real processes (`python -m hub web|worker`, as on the device) against their own
Mosquitto, Redis and MariaDB. The day: 8,640 MQTT messages (one every 10 s of a day, all
sent at once), each carrying 50 readings with their time, stored by the worker into 50
inputs → 50 feeds of 10 s (432,000 points, flushed every 2 s meanwhile). Then the web process
answers what needs no feed read (input/list, input/get, health, the login page; measured
here too: the feed engine and numpy load on the first feed read or write), then what a day
of use asks: feed/list, a 1,000-point feed/data of the day for every feed, input/list,
input/get, health, many times over. VmRSS (and the peak, VmHWM) come from
/proc/<pid>/status afterwards; whether numpy was loaded from /proc/<pid>/maps.

Both are measured as the device runs them: the hub byte-compiled first (roles/hub runs
compileall; without .pyc files every start compiles the hub's sources, and the compiler's
freed heap, ~2.5 MB, stays resident) and the malloc settings (MALLOC_ARENA_MAX,
MALLOC_MMAP_THRESHOLD_) of cydynni-hub-web.service and cydynni-hub-worker.service
(BENCH_AS_DEPLOYED=0 measures the raw checkout instead).

Reference, same run: a bare python3 that imports the libraries the hub uses (bottle, cheroot,
paho-mqtt, redis, pymysql, numpy) and does nothing. Goals (issue 12): worker ≤ 50 MB, web ≤ 45 MB.

    .venv/bin/python bench/bench_memory.py
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, bench_hub, hub_env, logged_inputs
from devstack.servers import Servers, free_port, unit_malloc_env

FEEDS = 50
DAY_MESSAGES = 8640
WEB_ROUNDS = 5
REFERENCE_IMPORTS = "import bottle, cheroot.wsgi, paho.mqtt.client, redis, pymysql, numpy"
AS_DEPLOYED = os.environ.get("BENCH_AS_DEPLOYED", "1") != "0"


def status_fields_mb(status: str) -> dict[str, float]:
    """The memory fields of a /proc/<pid>/status text (VmRSS, VmHWM, RssAnon, RssFile…) in
    MB."""
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def status_mb(pid: int) -> dict[str, float]:
    return status_fields_mb(Path(f"/proc/{pid}/status").read_text())


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = status_mb(pid)
    return fields["VmRSS"], fields["VmHWM"]


def numpy_loaded(pid: int) -> bool:
    """Whether numpy's core extension is mapped into the process (i.e. numpy was imported)."""
    return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"[ERROR] timed out waiting for {what}")


def get(port: int, path: str, params: dict) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"{path}?{urllib.parse.urlencode(params)}")
        res = conn.getresponse()
        body = res.read()
        if res.status != 200:
            raise SystemExit(f"[ERROR] {path} answered {res.status}: {body[:200]!r}")
        return body
    finally:
        conn.close()


def _answers(port: int) -> bool:
    try:
        return bool(get(port, "/describe", {}))
    except OSError:
        return False


def day_message(i: int, t0: int) -> str:
    """Message i of the simulated day: FEEDS readings with their time (10 s apart)."""
    doc: dict[str, float] = {f"p{k}": 100.0 + k + (i % 360) / 10 for k in range(FEEDS)}
    doc["time"] = t0 + 10 * i
    return json.dumps(doc)


def simulate_day(servers: Servers, t0: int) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-mem-{uuid.uuid4().hex}")
    pub.username_pw_set(servers.mqtt_user, servers.mqtt_password)
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", servers.mqtt_port)
    pub.loop_start()
    infos = [pub.publish("emon/house", day_message(i, t0), qos=1) for i in range(DAY_MESSAGES)]
    for info in infos:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


def main() -> None:
    with bench_hub("memory", flush_interval=2, redis_prefix="benchmem:",
                   mqtt_client_id="bench-mem-worker", web_threads=8) as (servers, ctx, logs):
        user = ctx.users.register("bench", "bench-password")
        feeds = [feed for feed, _ in logged_inputs(ctx, user.id, "house", FEEDS, "power")]
        env = hub_env(ctx.config)
        if AS_DEPLOYED:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "hub")],
                           check=True, stdout=subprocess.DEVNULL)
            env.update(unit_malloc_env())
        print(f"measured as deployed (.pyc, {unit_malloc_env()}): {AS_DEPLOYED}")
        port = free_port()
        procs = {}
        with open(logs / "worker.log", "wb") as wlog, open(logs / "web.log", "wb") as hlog:
            procs["worker"] = subprocess.Popen([sys.executable, "-m", "hub", "worker"],
                                               cwd=ROOT, env=env, stdout=wlog,
                                               stderr=subprocess.STDOUT)
            procs["web"] = subprocess.Popen([sys.executable, "-m", "hub", "web", "--host",
                                             "127.0.0.1", "--port", str(port)], cwd=ROOT,
                                            env=env, stdout=hlog, stderr=subprocess.STDOUT)
            ref_proc = subprocess.Popen([sys.executable, "-c",
                                         f"{REFERENCE_IMPORTS}; import time; time.sleep(600)"])
        try:
            wait_for(lambda: (b := ctx.redis.get(ctx.keys.worker_heartbeat))
                     and json.loads(b)["mqtt_connected"], 30, "worker")
            wait_for(lambda: _answers(port), 30, "web")
            idle = {name: rss_mb(proc.pid)[0] for name, proc in procs.items()}
            idle_numpy = {name: numpy_loaded(proc.pid) for name, proc in procs.items()}
            t0 = (int(time.time()) - 86400 - 600) // 10 * 10
            started = time.perf_counter()
            simulate_day(servers, t0)
            wait_for(lambda: ctx.inputs.tree(user.id)["house"]["p0"]["time"]
                     == t0 + 10 * (DAY_MESSAGES - 1), 300, "the day's readings")
            wait_for(lambda: ctx.feeds.buffer.pending_count() == 0, 60, "flush")
            print(f"simulated day: {DAY_MESSAGES * FEEDS:,} readings stored in "
                  f"{time.perf_counter() - started:.1f} s")
            key = {"apikey": user.apikey_read}
            # First what needs no feed read (inputs, health, the login page): numpy is
            # imported only when a feed is read or written, so this is the web before any
            # graph was asked for. Then the day's graphs, which load the engine and numpy.
            for _ in range(WEB_ROUNDS):
                get(port, "/input/list.json", key)
                get(port, "/input/get.json", key)
                get(port, "/health.json", {})
                get(port, "/login", {})
            time.sleep(1)
            web_pid = procs["web"].pid
            no_feed = (rss_mb(web_pid)[0], numpy_loaded(web_pid))
            for _ in range(WEB_ROUNDS):
                get(port, "/feed/list.json", key)
                get(port, "/input/list.json", key)
                get(port, "/input/get.json", key)
                get(port, "/health.json", {})
                for feed in feeds:
                    get(port, "/feed/data.json", {**key, "id": feed, "start": t0,
                                                  "end": t0 + 86400, "interval": 86})
            time.sleep(1)
            figures = {name: rss_mb(proc.pid) for name, proc in procs.items()}
            loaded = {name: numpy_loaded(proc.pid) for name, proc in procs.items()}
            # RssFile (mapped library and feed pages) shrinks when the kernel reclaims page
            # cache on a busy machine; RssAnon is the heap, which is what the hub controls.
            split = {name: status_mb(proc.pid) for name, proc in procs.items()}
            reference = rss_mb(ref_proc.pid)[0]
        finally:
            for proc in (*procs.values(), ref_proc):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (*procs.values(), ref_proc):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        ctx.close()
        print(f"reference: bare python3 importing the hub's libraries: {reference:.1f} MB")
        for name, (rss, hwm) in figures.items():
            print(f"hub {name}: VmRSS {rss:.1f} MB (peak {hwm:.1f} MB; anon "
                  f"{split[name]['RssAnon']:.1f} MB, file {split[name]['RssFile']:.1f} MB) "
                  f"with {FEEDS} feeds after a simulated day, numpy loaded: {loaded[name]}; "
                  f"{idle[name]:.1f} MB when it had just started, numpy loaded: "
                  f"{idle_numpy[name]}")
        print(f"hub web before any feed read (inputs, health, login page): VmRSS "
              f"{no_feed[0]:.1f} MB; numpy loaded: {no_feed[1]}")
        for name, (rss, _) in figures.items():
            print(json.dumps({"bench": f"memory_{name}_rss", "value": round(rss, 1),
                              "unit": "MB", "reference": round(reference, 1)}))
        print(json.dumps({"bench": "memory_web_no_feed_read_rss", "value": round(no_feed[0], 1),
                          "unit": "MB", "reference": round(reference, 1)}))


if __name__ == "__main__":
    main()
