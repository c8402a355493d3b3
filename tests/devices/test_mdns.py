"""mDNS through avahi, inside test network namespaces: a private D-Bus and avahi-daemon run in
one namespace (restricted to its veth end), the hub's Mdns publisher adds its services there,
and a plain mDNS query from the other namespace must find `_http._tcp` "CydYnni Hub" and
`cydynni.local`. Nothing is multicast on the machine's own interfaces."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.devices.netns import veth_pair

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
"""

AVAHI_CONF = """[server]
host-name=cydynni
use-ipv4=yes
use-ipv6=no
allow-interfaces=va
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""

# A one-shot mDNS client (legacy unicast: avahi answers straight to our port).
QUERY = """
import json, socket, struct, sys, time
def query(name, qtype):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    return struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
sock.settimeout(0.5)
wanted = {"_http._tcp.local": 12, "_mqtt._tcp.local": 12, "cydynni.local": 1}
got = {}
deadline = time.time() + 45
while time.time() < deadline and len(got) < len(wanted):
    for name, qtype in wanted.items():
        if name in got:
            continue
        sock.sendto(query(name, qtype), ("224.0.0.251", 5353))
        try:
            data, _ = sock.recvfrom(9000)
        except socket.timeout:
            continue
        for other in wanted:
            encoded = b"".join(bytes([len(p)]) + p.encode() for p in other.split("."))
            if encoded in data[12:12 + len(encoded) + 1]:
                got[other] = data.hex()
print(json.dumps(got))
"""

PUBLISH = """
import os, sys, time
from hub.worker.device.discovery import Mdns
mdns = Mdns(80, 1883)
mdns.tick(0)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:  # the test says stop
    time.sleep(0.2)
print(sorted(cmd[0] for cmd, proc in mdns.procs.items() if proc.poll() is None))
mdns.stop()
"""


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"mDNS test needs {', '.join(missing)} (apt: avahi-daemon avahi-utils dbus)")


@pytest.mark.netns
def test_mdns_services_are_found_from_the_other_namespace(tmp_path: Path):
    _need("avahi-daemon", "avahi-publish", "dbus-daemon", "unshare")
    bus = tmp_path / "bus"
    (tmp_path / "bus.conf").write_text(BUS_CONF.format(bus=bus))
    (tmp_path / "avahi.conf").write_text(AVAHI_CONF)
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={bus}", "PYTHONPATH": os.getcwd()}
    started: list[subprocess.Popen] = []
    with veth_pair() as pair:
        try:
            started.append(subprocess.Popen(
                ["ip", "netns", "exec", pair.sender, "dbus-daemon",
                 f"--config-file={tmp_path / 'bus.conf'}", "--nofork"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 10
            while not bus.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            # Its own /run/avahi-daemon (pid file) in a private mount namespace.
            started.append(subprocess.Popen(
                ["ip", "netns", "exec", pair.sender, "unshare", "-m", "sh", "-c",
                 "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && "
                 "exec avahi-daemon --no-drop-root --no-chroot --no-rlimits "
                 f"-f {tmp_path / 'avahi.conf'}"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            # The services stay up until the query is done: under load avahi takes several
            # seconds to start, probe and announce (a fixed 8 s was once too short).
            stop = tmp_path / "stop"
            publisher = pair.python(pair.sender, "-c", PUBLISH, str(stop), env=env)
            query = pair.python(pair.receiver, "-c", QUERY, pair.receiver_ip)
            answers_out, err = query.communicate(timeout=90)
            stop.touch()
            assert query.returncode == 0, err
            published, perr = publisher.communicate(timeout=90)
        finally:
            for proc in reversed(started):
                proc.terminate()
                proc.wait(10)
    answers = json.loads(answers_out)
    assert set(answers) == {"_http._tcp.local", "_mqtt._tcp.local", "cydynni.local"}, perr
    assert b"CydYnni Hub" in bytes.fromhex(answers["_http._tcp.local"])
    assert b"CydYnni Hub MQTT" in bytes.fromhex(answers["_mqtt._tcp.local"])
    assert socket.inet_aton(pair.sender_ip) in bytes.fromhex(answers["cydynni.local"])
    assert "'-s'" in published  # the service publishers were still running
