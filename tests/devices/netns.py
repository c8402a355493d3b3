"""Two network namespaces joined by a veth pair, for tests that broadcast.

Nothing is created in the machine's own namespace: both ends of the veth pair are made
inside the test namespaces, so broadcasts and multicasts never reach a real interface.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

SUBNET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _wait_for_carrier(ns: str, dev: str, timeout: float = 10.0) -> None:
    """A veth end drops packets until both ends are up; wait for LOWER_UP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "-n", ns, "link", "show", dev], capture_output=True,
                             text=True, timeout=10).stdout
        if "LOWER_UP" in out and "NO-CARRIER" not in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{dev} in {ns} did not come up")


def require_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    if shutil.which("ip") is None:
        pytest.skip("network namespace tests need iproute2")


@dataclass(frozen=True)
class Pair:
    sender: str
    receiver: str
    sender_ip: str
    receiver_ip: str
    broadcast: str

    def python(self, ns: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        """Run this Python (with the repo on the path) inside namespace `ns`."""
        env = {**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})}
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def veth_pair() -> Iterator[Pair]:
    require_netns()
    tag = uuid.uuid4().hex[:6]
    a, b = f"cyd-a-{tag}", f"cyd-b-{tag}"
    _ip("netns", "add", a)
    try:
        _ip("netns", "add", b)
        try:
            _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
            for ns, dev, host in ((a, "va", 1), (b, "vb", 2)):
                _ip("-n", ns, "addr", "add", f"{SUBNET}.{host}/24", "broadcast", "+", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            for ns, dev in ((a, "va"), (b, "vb")):
                _wait_for_carrier(ns, dev)
            yield Pair(a, b, f"{SUBNET}.1", f"{SUBNET}.2", f"{SUBNET}.255")
        finally:
            _ip("netns", "del", b)
    finally:
        _ip("netns", "del", a)
