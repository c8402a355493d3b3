"""How devices find the hub: a UDP broadcast EmonESP understands, and mDNS through avahi.

UDP: EmonESP listens on port 5005; a datagram that is exactly `emonpi.local` (12 bytes, no
NUL) makes it take the sender's address as its MQTT server and start asking
`/emoncms/device/auth/request.json` there. The hub sends it to the broadcast address of every
IPv4 interface (netifaces), every FAST_PERIOD s while a pairing window is open and every
SLOW_PERIOD s otherwise. Off unless `broadcast_enabled`.

mDNS: avahi-daemon answers for the host name (the image names the hub `cydynni`, so
`cydynni.local`); the hub adds `_http._tcp` and `_mqtt._tcp` services with `avahi-publish`
(one child process per record, restarted if it dies), plus a `cydynni.local` address record
when the host is named otherwise. Off unless `mdns_enabled`.

Run one broadcast by hand (tests run it inside a network namespace):
    python -m hub.worker.device.discovery --once
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket

# bandit B404: subprocess only runs avahi-browse, with a fixed argv and no shell.
import subprocess  # nosec B404
import time
from collections.abc import Sequence

import netifaces

log = logging.getLogger(__name__)

PAYLOAD = b"emonpi.local"  # what EmonESP's autoauth compares against
PORT = 5005
FAST_PERIOD = 5.0
SLOW_PERIOD = 60.0
MDNS_NAME = "cydynni"


def broadcast_addresses() -> list[str]:
    """The IPv4 broadcast address of every interface that has one (loopback has none)."""
    found: list[str] = []
    for iface in netifaces.interfaces():
        try:
            entries = netifaces.ifaddresses(iface).get(netifaces.AF_INET, [])
        except ValueError:  # interface vanished between the two calls
            continue
        for entry in entries:
            address = entry.get("broadcast")
            if address and not address.startswith("127.") and address not in found:
                found.append(address)
    return found


def ipv4_addresses() -> list[str]:
    found = []
    for iface in netifaces.interfaces():
        try:
            entries = netifaces.ifaddresses(iface).get(netifaces.AF_INET, [])
        except ValueError:
            continue
        found += [e["addr"] for e in entries if e.get("addr") and
                  not e["addr"].startswith("127.")]
    return found


def send_announcement(addresses: Sequence[str] | None = None, port: int = PORT) -> list[str]:
    """Send PAYLOAD to each broadcast address; returns those that were sent."""
    sent = []
    targets = broadcast_addresses() if addresses is None else list(addresses)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for address in targets:
            try:
                sock.sendto(PAYLOAD, (address, port))
                sent.append(address)
            except OSError as exc:
                log.warning("discovery broadcast to %s:%s failed: %s", address, port, exc)
    return sent


class Broadcaster:
    """Call `tick(now, pairing_open)` every second; it sends when a period has passed."""

    def __init__(self, fast: float = FAST_PERIOD, slow: float = SLOW_PERIOD) -> None:
        self.fast, self.slow = fast, slow
        self.last = float("-inf")
        self.sent = 0

    def tick(self, now: float, pairing_open: bool) -> bool:
        if now - self.last < (self.fast if pairing_open else self.slow):
            return False
        self.last = now
        self.sent += len(send_announcement())
        return True


class Mdns:
    """Keeps `avahi-publish` children alive for the hub's services."""

    def __init__(self, web_port: int, mqtt_port: int, name: str = MDNS_NAME,
                 binary: str = "avahi-publish") -> None:
        self.web_port, self.mqtt_port, self.name = web_port, mqtt_port, name
        self.binary = shutil.which(binary)
        self.procs: dict[tuple[str, ...], subprocess.Popen] = {}
        self.last_check = float("-inf")
        self._warned = False

    def commands(self, addresses: Sequence[str] | None = None,
                 hostname: str | None = None) -> list[tuple[str, ...]]:
        title = "CydYnni Hub"
        cmds = [("-s", title, "_http._tcp", str(self.web_port), "path=/"),
                ("-s", f"{title} MQTT", "_mqtt._tcp", str(self.mqtt_port))]
        hostname = socket.gethostname() if hostname is None else hostname
        addresses = ipv4_addresses() if addresses is None else addresses
        if hostname.split(".")[0] != self.name and addresses:
            cmds.append(("-a", "-R", f"{self.name}.local", addresses[0]))
        return cmds

    def tick(self, now: float) -> None:
        if now - self.last_check < 30:
            return
        self.last_check = now
        if self.binary is None:
            if not self._warned:
                log.error("mdns_enabled but avahi-publish is missing: install avahi-utils")
                self._warned = True
            return
        wanted = set(self.commands())
        for cmd, proc in list(self.procs.items()):
            if cmd not in wanted or proc.poll() is not None:
                self._end(cmd)
        for cmd in wanted - set(self.procs):
            try:
                # bandit B603: fixed argv, no shell.
                self.procs[cmd] = subprocess.Popen(  # nosec B603
                    [self.binary, *cmd], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError as exc:
                log.error("cannot start %s %s: %s", self.binary, " ".join(cmd), exc)

    def _end(self, cmd: tuple[str, ...]) -> None:
        proc = self.procs.pop(cmd)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stop(self) -> None:
        for cmd in list(self.procs):
            self._end(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.worker.device.discovery",
                                     description="Send the hub's UDP discovery broadcast.")
    parser.add_argument("--once", action="store_true", help="send once and exit")
    parser.add_argument("--period", type=float, default=FAST_PERIOD, help="seconds between")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args(argv)
    while True:
        sent = send_announcement(port=args.port)
        print(" ".join(sent) if sent else "no IPv4 interface with a broadcast address",
              flush=True)
        if args.once:
            return 0 if sent else 1
        time.sleep(args.period)


if __name__ == "__main__":
    raise SystemExit(main())
