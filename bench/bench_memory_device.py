"""Bench (issue 12): resident memory of `hub web` and `hub worker` on the device, after the
same simulated day as bench_memory.py, in the last built image booted under QEMU.

bench_memory.py measures the hub on this machine (Python 3.11, numpy from a wheel with its
own OpenBLAS); this one measures what ships: the image's Python 3.13 and Debian's numpy,
redis, pymysql and cheroot, the units' malloc settings, a first-booted device with the
boot test's headless file (its server entry makes the worker's sync thread import the feed
engine a minute after its start, as on a device linked to a server).

The day: one MQTT message (50 readings) creates 50 inputs, each logged to a 10 s feed over
the API; then 8,640 messages with their time (a day at 10 s, 432,000 readings) through the
forwarded MQTT port with the device's own credentials, 400 at a time: Mosquitto drops a
subscriber's queued messages past `max_queued_messages` (1,000), and the worker under TCG
stores ~20 messages a second. Then the device's own feed flush (every 300 s), checked by
the .dat sizes over ssh, and a restart of the web (creating the feeds loaded the feed
engine into it; on the host the bench creates them in-process). The web answers what
needs no feed read (inputs, health, login page), then the day's graphs: feed/list and a
1,000-point day of each feed, five times. VmRSS is read from /proc/<pid>/status over ssh.

Reference, same boot: the guest's python3 importing the hub's libraries and nothing else.
Goals (issue 12): worker <= 50 MB, web <= 45 MB. Takes ~13 minutes; needs `./build.sh`.

    .venv/bin/python bench/bench_memory_device.py
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_memory import (
    DAY_MESSAGES,
    FEEDS,
    REFERENCE_IMPORTS,
    WEB_ROUNDS,
    day_message,
    status_fields_mb,
)
from image import config as build_config
from image.qemu import last_build
from tests.image.guest import Guest

BATCH = 400  # messages in flight before waiting for the worker (Mosquitto queues 1,000)
UNITS = {"web": "cydynni-hub-web", "worker": "cydynni-hub-worker"}
USER = {"username": "bench", "password": "bench-password-1", "email": "bench@example.org"}
FLUSH_TIMEOUT = 900  # s: the device flushes every 300 s
# What a `hub web` that has drawn a graph has loaded from outside the hub and the stdlib.
WEB_LIBRARIES = ("import sys\nsys.modules['cryptography'] = None\n"
                 "import bottle, cheroot.wsgi, redis, pymysql, numpy")


class Device:
    """The guest as this bench drives it: the hub's API with one account, ssh for /proc."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.config = tomllib.loads(guest.ssh("cat /data/hub/hub.toml").stdout)
        status, registered = guest.http(
            "user/register.json", data={**USER, "setup_code": self.config["setup_code"]})
        if status != 200:
            raise SystemExit(f"[ERROR] user/register.json answered {status}: {registered}")
        _, keys = guest.http("user/auth.json", data=USER)
        self.apikey = keys["apikey_write"]

    def api(self, path: str, **params: object) -> object:
        status, body = self.guest.http(path, apikey=self.apikey, timeout=60, **params)
        if status != 200:
            raise SystemExit(f"[ERROR] {path} answered {status}: {str(body)[:200]}")
        return body

    def rss(self, unit: str) -> dict[str, object]:
        """VmRSS, VmHWM, RssAnon, RssFile (MB) of a unit's main process; numpy mapped?"""
        pid = self.guest.ssh(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        fields: dict[str, object] = {
            **status_fields_mb(self.guest.ssh(f"cat /proc/{pid}/status").stdout)}
        maps = self.guest.ssh(f"grep -c _multiarray_umath /proc/{pid}/maps", check=False)
        fields["numpy"] = maps.stdout.strip() not in ("", "0")
        return fields

    def reference_rss(self, imports: str = REFERENCE_IMPORTS) -> float:
        script = (f"{imports}\nimport re\n"
                  "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])")
        return int(self.guest.ssh(f"python3 -c {shlex.quote(script)}").stdout) / 1024


def logged_feeds(device: Device, publisher: mqtt.Client, t0: int) -> list[int]:
    """50 inputs from one message, each logged to its own 10 s PHPFina feed; feed ids."""
    publisher.publish("emon/house", day_message(0, t0), qos=1).wait_for_publish(60)
    deadline = time.monotonic() + 120
    while len(device.api("input/get.json").get("house", {})) < FEEDS:
        if time.monotonic() > deadline:
            raise SystemExit("[ERROR] the 50 inputs did not appear")
        time.sleep(1)
    inputs = sorted((i for i in device.api("input/list.json") if i["nodeid"] == "house"),
                    key=lambda i: int(i["name"][1:]))
    feeds = []
    for entry in inputs:
        created = device.api("feed/create.json", name=f"house-{entry['name']}", tag="house",
                             datatype=1, engine=5, options=json.dumps({"interval": 10}))
        status, done = device.guest.http(
            "input/process/set.json", apikey=device.apikey, inputid=entry["id"],
            data={"inputid": entry["id"], "processlist": f"1:{created['feedid']}"})
        if status != 200 or not done.get("success"):
            raise SystemExit(f"[ERROR] input/process/set.json: {status} {done}")
        feeds.append(created["feedid"])
    return feeds


def simulate_day(device: Device, publisher: mqtt.Client, t0: int) -> None:
    for first in range(1, DAY_MESSAGES, BATCH):
        end = min(first + BATCH, DAY_MESSAGES)
        for info in [publisher.publish("emon/house", day_message(i, t0), qos=1)
                     for i in range(first, end)]:
            info.wait_for_publish(300)
        last = t0 + 10 * (end - 1)
        deadline = time.monotonic() + 300
        while device.api("input/get.json")["house"][f"p{FEEDS - 1}"]["time"] < last:
            if time.monotonic() > deadline:
                raise SystemExit(f"[ERROR] the worker stopped at {first}..{end}")
            time.sleep(0.5)


def wait_for_flush(device: Device, feeds: list[int]) -> None:
    """Until every .dat holds the day (by size over ssh: no feed read by the web): 4 bytes
    a slot from message 1 on (message 0 created the inputs, before their feeds existed)."""
    want = (DAY_MESSAGES - 1) * 4
    paths = " ".join(f"/data/hub/feeds/{feed}.dat" for feed in feeds)
    deadline = time.monotonic() + FLUSH_TIMEOUT
    while time.monotonic() < deadline:
        sizes = device.guest.ssh(f"stat -c %s {paths}", check=False).stdout.split()
        if len(sizes) == len(feeds) and all(int(size) >= want for size in sizes):
            return
        time.sleep(5)
    raise SystemExit("[ERROR] the device did not flush the day within "
                     f"{FLUSH_TIMEOUT} s")


def main() -> int:
    built = last_build(build_config.load().deploy_dir)
    if built is None:
        print("[ERROR] no built image: run ./build.sh first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-memory-device-") as workdir:
        guest = Guest(built, Path(workdir))
        guest.start()
        try:
            ready = guest.wait_hub()
            guest.wait_ssh(timeout=300)
            print(f"first boot of {built.image.name}: hub ready after {ready:.1f} s")
            device = Device(guest)
            time.sleep(30)  # first-boot work after "ready" settles (not the sync: 60 s)
            idle = {name: device.rss(unit) for name, unit in UNITS.items()}
            publisher = mqtt.Client(CallbackAPIVersion.VERSION2,
                                    client_id=f"bench-mem-device-{uuid.uuid4().hex}")
            publisher.username_pw_set(device.config.get("mqtt_user", "hub"),
                                      device.config["mqtt_password"])
            publisher.max_inflight_messages_set(100)
            publisher.connect("127.0.0.1", guest.ports["mqtt"])
            publisher.loop_start()
            try:
                t0 = (int(time.time()) - 86400 - 600) // 10 * 10
                feeds = logged_feeds(device, publisher, t0)
                started = time.monotonic()
                simulate_day(device, publisher, t0)
                print(f"simulated day: {DAY_MESSAGES * FEEDS:,} readings taken in "
                      f"{time.monotonic() - started:.0f} s")
            finally:
                publisher.disconnect()
                publisher.loop_stop()
            wait_for_flush(device, feeds)
            print(f"flushed to {len(feeds)} feeds {time.monotonic() - started:.0f} s after "
                  "the first message")
            # feed/create.json loaded the feed engine (numpy) into this web process; on the
            # host the bench creates the feeds in-process. A restarted web is the one a
            # household has after the feeds were set up, and the same as bench_memory's.
            guest.ssh(f"systemctl restart {UNITS['web']}")
            guest.wait_hub(timeout=120)
            for _ in range(WEB_ROUNDS):
                device.api("input/list.json")
                device.api("input/get.json")
                device.guest.http("health.json")
                device.guest.http("login")
            no_feed = device.rss(UNITS["web"])
            for _ in range(WEB_ROUNDS):
                device.api("feed/list.json")
                device.api("input/list.json")
                device.api("input/get.json")
                device.guest.http("health.json")
                for feed in feeds:
                    points = device.api("feed/data.json", id=feed, start=t0,
                                        end=t0 + 86400, interval=86)
                    if len(points) < 900:
                        raise SystemExit(f"[ERROR] feed {feed}: {len(points)} points")
            time.sleep(1)
            after = {name: device.rss(unit) for name, unit in UNITS.items()}
            reference = device.reference_rss()
            web_floor = device.reference_rss(WEB_LIBRARIES)
            guest.ssh("systemctl poweroff", check=False, timeout=30)
            guest.wait_exit(timeout=180)
        finally:
            guest.kill()
    print(f"reference: the device's python3 importing the hub's libraries: {reference:.1f} MB")
    print(f"the web's libraries alone (no paho; cryptography hidden, as hub/__main__.py does "
          f"it): {web_floor:.1f} MB")
    for name, fields in after.items():
        print(f"device hub {name}: VmRSS {fields['VmRSS']:.1f} MB (peak {fields['VmHWM']:.1f}"
              f" MB; anon {fields['RssAnon']:.1f} MB, file {fields['RssFile']:.1f} MB) after "
              f"the day, numpy loaded: {fields['numpy']}; {idle[name]['VmRSS']:.1f} MB just "
              f"after the first boot, numpy loaded: {idle[name]['numpy']}")
    print(f"device hub web before any feed read: VmRSS {no_feed['VmRSS']:.1f} MB, numpy "
          f"loaded: {no_feed['numpy']}")
    for name, fields in after.items():
        print(json.dumps({"bench": f"memory_device_{name}_rss", "value": round(fields["VmRSS"], 1),
                          "unit": "MB", "reference": round(reference, 1)}))
    print(json.dumps({"bench": "memory_device_web_no_feed_read_rss",
                      "value": round(no_feed["VmRSS"], 1), "unit": "MB",
                      "reference": round(reference, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
