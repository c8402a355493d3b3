"""Support staff's side of the fleet server (goosebit's REST API, /api/v1):

    ota publish BUNDLE                      upload a signed bundle; prints its software id
    ota register HUB --token T              create a hub entry with its device token
    ota assign --software ID|latest HUB...  one or more hubs
    ota assign --software ID --feed F       a group: a rollout to every hub in feed F
    ota assign --software ID --stages canary,pilot,all   staged: starts the first feed
    ota status                              every hub: version, state, last error
    ota watch --software ID --stages ... --max-failure-rate 0.2
                                            advance a staged rollout feed by feed; pause it
                                            when failures pass the threshold (goosebit has
                                            no automatic abort)

Server and credentials: --server (or OTA_SERVER), --user (OTA_USER), password from
OTA_PASSWORD or --password-file; never on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from ota import bundle as bundles
from ota.errors import ServerError

STATE_NAMES = {"0": "unknown", "1": "registered", "2": "running", "3": "error", "4": "finished"}


class Goosebit:
    def __init__(self, server: str, user: str, password: str, timeout: float = 600) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.token = self._login(user, password)

    def _open(self, req: urllib.request.Request) -> dict:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(32 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace")
            raise ServerError(f"{req.get_method()} {req.full_url}: HTTP {exc.code} {detail}") \
                from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ServerError(f"{req.full_url}: {exc}") from exc
        return json.loads(raw) if raw.strip() else {}

    def _login(self, user: str, password: str) -> str:
        body = urllib.parse.urlencode({"username": user, "password": password}).encode()
        req = urllib.request.Request(f"{self.server}/login", data=body, method="POST")
        return str(self._open(req)["access_token"])

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{self.server}/api/v1{path}", data=data, method=method,
                                     headers=headers)
        return self._open(req)

    def upload(self, path: Path) -> int:
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        tail = f"\r\n--{boundary}--\r\n".encode()
        body = head.encode() + path.read_bytes() + tail
        req = urllib.request.Request(
            f"{self.server}/api/v1/software", data=body, method="PUT",
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": f"multipart/form-data; boundary={boundary}"})
        return int(self._open(req)["id"])

    def devices(self) -> list[dict]:
        return list(self.call("GET", "/devices").get("devices", []))

    def software(self) -> list[dict]:
        return list(self.call("GET", "/software").get("software", []))

    def rollouts(self) -> list[dict]:
        return list(self.call("GET", "/rollouts").get("rollouts", []))

    def register(self, device: str, token: str, feed: str | None = None) -> None:
        body: dict = {"devices": [device], "auth_token": token}
        if feed:
            body["feed"] = feed
        self.call("PUT", "/devices", body)

    def assign(self, devices: list[str], software: str) -> None:
        self.call("PATCH", "/devices", {"devices": devices, "software": software})

    def start_rollout(self, feed: str, software_id: int, name: str) -> int:
        for device in self.devices():
            if device.get("feed") == feed:
                self.call("PATCH", "/devices", {"devices": [device["id"]], "software": "rollout"})
        return int(self.call("PUT", "/rollouts", {"name": name, "feed": feed,
                                                  "software_id": software_id})["id"])

    def pause(self, rollout_id: int, paused: bool = True) -> None:
        self.call("PATCH", "/rollouts", {"ids": [rollout_id], "paused": paused})


def connect(args: argparse.Namespace) -> Goosebit:
    server = args.server or os.environ.get("OTA_SERVER")
    user = args.user or os.environ.get("OTA_USER")
    if args.password_file:
        password = Path(args.password_file).read_text().strip()
    else:
        password = os.environ.get("OTA_PASSWORD", "")
    if not server or not user or not password:
        raise ServerError("set --server/OTA_SERVER, --user/OTA_USER and OTA_PASSWORD or "
                          "--password-file")
    return Goosebit(server, user, password)


def cmd_publish(args: argparse.Namespace) -> int:
    if args.keyring:  # refuse to publish what a hub would refuse
        bundles.check(args.bundle, args.keyring)
    software_id = connect(args).upload(args.bundle)
    print(json.dumps({"software_id": software_id, "bundle": str(args.bundle)}))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    connect(args).register(args.device, args.token, args.feed)
    print(json.dumps({"device": args.device, "registered": True}))
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    server = connect(args)
    if args.devices:
        server.assign(args.devices, args.software)
        print(json.dumps({"assigned": args.software, "devices": args.devices}))
    elif args.feed or args.stages:
        feed = args.feed or args.stages.split(",")[0]
        rollout = server.start_rollout(feed, int(args.software), f"{feed}-{args.software}")
        print(json.dumps({"rollout": rollout, "feed": feed, "software_id": int(args.software)}))
    else:
        raise ServerError("name hubs, --feed or --stages")
    return 0


def fleet_status(server: Goosebit) -> list[dict]:
    rows = []
    for device in server.devices():
        # the device list carries no log; each hub's last feedback details are under /log
        quoted = urllib.parse.quote(device["id"], safe="")
        log = (server.call("GET", f"/devices/{quoted}/log").get("log") or "").strip().splitlines()
        assigned = device.get("assigned_software") or {}
        rows.append({"hub": device["id"], "version": device.get("sw_version"),
                     "state": STATE_NAMES.get(str(device.get("last_state")),
                                              str(device.get("last_state"))),
                     "feed": device.get("feed"), "assigned": assigned.get("version"),
                     "polling": device.get("polling"), "last_error": log[-1] if log else None})
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    for row in fleet_status(connect(args)):
        print(json.dumps(row))
    return 0


def watch_step(server: Goosebit, software_id: int, stages: list[str],
               max_failure_rate: float) -> dict:
    """One look at a staged rollout: pause it on too many failures, start the next feed
    once every hub of the current one has finished."""
    rollouts = [r for r in server.rollouts() if int((r.get("software") or {}).get("id", -1))
                == software_id or r.get("software_id") == software_id]
    started = {r["feed"]: r for r in rollouts}
    devices = server.devices()
    for feed in stages:
        if feed not in started:
            server.start_rollout(feed, software_id, f"{feed}-{software_id}")
            return {"action": "started", "feed": feed}
        rollout = started[feed]
        members = [d for d in devices if d.get("feed") == feed]
        failures = int(rollout.get("failure_count", 0))
        successes = int(rollout.get("success_count", 0))
        if members and failures / len(members) > max_failure_rate:
            if not rollout.get("paused"):
                server.pause(int(rollout["id"]))
            return {"action": "paused", "feed": feed, "failures": failures,
                    "hubs": len(members)}
        if successes + failures < len(members):
            return {"action": "waiting", "feed": feed, "done": successes + failures,
                    "hubs": len(members)}
    return {"action": "complete"}


def cmd_watch(args: argparse.Namespace) -> int:
    server = connect(args)
    stages = args.stages.split(",")
    while True:
        step = watch_step(server, int(args.software), stages, args.max_failure_rate)
        print(json.dumps(step), flush=True)
        if step["action"] in ("paused", "complete") or args.once:
            return 1 if step["action"] == "paused" else 0
        time.sleep(args.interval)


def add_commands(sub: argparse._SubParsersAction) -> None:
    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", help="goosebit URL (or OTA_SERVER)")
        p.add_argument("--user", help="goosebit user (or OTA_USER)")
        p.add_argument("--password-file", help="file with the password (or OTA_PASSWORD)")

    p = sub.add_parser("publish", help="upload a bundle to the fleet server")
    p.add_argument("bundle", type=Path)
    p.add_argument("--keyring", type=Path, help="check the bundle against it first")
    server_args(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("register", help="create a hub entry with its device token")
    p.add_argument("device")
    p.add_argument("--token", required=True)
    p.add_argument("--feed", help="group (canary, pilot, all ...)")
    server_args(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("assign", help="assign a release to hubs, a feed, or stages")
    p.add_argument("devices", nargs="*")
    p.add_argument("--software", required=True, help="software id, or latest")
    p.add_argument("--feed")
    p.add_argument("--stages", help="feeds in order, e.g. canary,pilot,all")
    server_args(p)
    p.set_defaults(func=cmd_assign)

    p = sub.add_parser("status", help="every hub's version, state and last error")
    server_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("watch", help="advance or pause a staged rollout")
    p.add_argument("--software", required=True)
    p.add_argument("--stages", required=True)
    p.add_argument("--max-failure-rate", type=float, default=0.2)
    p.add_argument("--interval", type=float, default=60)
    p.add_argument("--once", action="store_true")
    server_args(p)
    p.set_defaults(func=cmd_watch)
