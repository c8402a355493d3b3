"""Discovery: the EmonESP UDP broadcast, sent and received inside test network namespaces,
and the mDNS publisher's gating. Nothing is broadcast on this machine's own interfaces."""

from __future__ import annotations

import json

import pytest

from hub.worker.device.discovery import PAYLOAD, PORT, Mdns
from tests.devices.netns import veth_pair

# Receives datagrams on port 5005 (like EmonESP's autoauth) and prints each as JSON.
RECEIVER = """
import json, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", %d))
sock.settimeout(%f)
print("ready", flush=True)
try:
    while True:
        data, (host, _port) = sock.recvfrom(255)
        print(json.dumps({"data": data.decode("latin-1"), "from": host}), flush=True)
except socket.timeout:
    pass
"""


def _received(proc) -> list[dict]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.netns
def test_broadcast_reaches_emonesp_listener_in_other_namespace():
    with veth_pair() as pair:
        receiver = pair.python(pair.receiver, "-c", RECEIVER % (PORT, 3.0))
        assert receiver.stdout.readline().strip() == "ready"
        sender = pair.python(pair.sender, "-m", "hub.worker.device.discovery", "--once")
        out, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        # Inside the namespace the only broadcast address is the test subnet's.
        assert out.split() == [pair.broadcast]
        got = _received(receiver)
    assert got == [{"data": PAYLOAD.decode(), "from": pair.sender_ip}]
    assert len(PAYLOAD) == 12  # EmonESP strcmp()s against "emonpi.local"


# Runs the Broadcaster with explicit clock values: fast while pairing is open, slow otherwise.
CADENCE = """
from hub.worker.device.discovery import Broadcaster
b = Broadcaster(fast=5, slow=60)
sent = [b.tick(now, open_) for now, open_ in
        [(0, True), (1, True), (5, True), (6, False), (64.9, False), (65, False), (66, True)]]
print(sent)
"""


@pytest.mark.netns
def test_broadcast_cadence_fast_while_pairing_open_slow_otherwise():
    with veth_pair() as pair:
        receiver = pair.python(pair.receiver, "-c", RECEIVER % (PORT, 3.0))
        assert receiver.stdout.readline().strip() == "ready"
        sender = pair.python(pair.sender, "-c", CADENCE)
        out, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        got = _received(receiver)
    assert out.strip() == "[True, False, True, False, False, True, False]"
    assert len(got) == 3 and all(g["data"] == "emonpi.local" for g in got)


def test_mdns_commands_publish_http_and_mqtt_and_the_cydynni_name():
    mdns = Mdns(80, 1883)
    on_cydynni = mdns.commands(addresses=["192.0.2.5"], hostname="cydynni")
    assert ("-s", "CydYnni Hub", "_http._tcp", "80", "path=/") in on_cydynni
    assert ("-s", "CydYnni Hub MQTT", "_mqtt._tcp", "1883") in on_cydynni
    assert len(on_cydynni) == 2  # avahi-daemon already answers cydynni.local
    renamed = mdns.commands(addresses=["192.0.2.5"], hostname="kitchen-hub")
    assert ("-a", "-R", "cydynni.local", "192.0.2.5") in renamed


def test_mdns_without_avahi_logs_and_carries_on(caplog):
    mdns = Mdns(80, 1883, binary="avahi-publish-not-installed")
    mdns.tick(0)
    mdns.tick(100)
    assert mdns.procs == {}
    assert sum("avahi-utils" in r.message for r in caplog.records) == 1
