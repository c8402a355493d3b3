"""`hub web` and `hub worker` tell systemd they are ready (Type=notify units), and only once
they are: the web when its port accepts connections, the worker after its first heartbeat."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import free_port, hub_env, stop_process
from hub.names import HEARTBEAT_S
from hub.notify import notify
from tests.client import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing where systemd's would; yields (socket, $NOTIFY_SOCKET)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(90)
    yield sock, str(path)
    sock.close()


def test_notify_sends_the_state_to_the_socket_path(notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1") is True
    assert sock.recv(64) == b"READY=1"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"cydynni-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1") is True
        assert sock.recv(64) == b"READY=1"


def test_notify_without_systemd_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


@pytest.mark.parametrize("address", ["/nonexistent/notify", "vsock:2:1234"])
def test_notify_to_a_socket_it_cannot_use_logs_and_carries_on(address, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert notify("READY=1") is False
    assert "READY=1" in caplog.text


@contextlib.contextmanager
def _running(config, notify_path: str, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`python -m hub <args>` with $NOTIFY_SOCKET set; stopped (or killed) on the way out."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", *args], cwd=ROOT,
                                env={**hub_env(config), "NOTIFY_SOCKET": notify_path},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc, timeout=60)


def _stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()


def test_web_is_ready_only_once_its_port_answers(hub_config, notify_socket, tmp_path):
    sock, path = notify_socket
    port = free_port()
    log = tmp_path / "web.log"
    with _running(hub_config, path, log, "web", "--host", "127.0.0.1", "--port",
                  str(port)) as proc:
        assert sock.recv(64) == b"READY=1", log.read_text()
        # No retry: the port must be bound before systemd hears "ready".
        assert Client("127.0.0.1", port).get("/version").status == 200
        _stop(proc, log)


def test_worker_is_ready_after_its_first_heartbeat(hub_config, ctx, notify_socket, tmp_path):
    sock, path = notify_socket
    ctx.redis.delete(ctx.keys.worker_heartbeat)
    log = tmp_path / "worker.log"
    with _running(hub_config, path, log, "worker") as proc:
        assert sock.recv(64) == b"READY=1", log.read_text()
        beat = ctx.redis.get(ctx.keys.worker_heartbeat)
        assert beat is not None, "ready before the first heartbeat"
        assert json.loads(beat)["pid"] == proc.pid
        sock.settimeout(HEARTBEAT_S * 2 + 1)
        with pytest.raises(TimeoutError):  # said once, not at every beat
            sock.recv(64)
        _stop(proc, log)


def test_web_starts_and_serves_before_redis_is_up(hub_config, notify_socket, tmp_path):
    """Its unit does not order after redis-server.service: nothing at start may need Redis."""
    sock, path = notify_socket
    port = free_port()
    no_redis = {**hub_config, "redis_port": free_port()}  # nothing listens there
    log = tmp_path / "web.log"
    with _running(no_redis, path, log, "web", "--host", "127.0.0.1", "--port",
                  str(port)) as proc:
        assert sock.recv(64) == b"READY=1", log.read_text()
        client = Client("127.0.0.1", port)
        assert client.get("/version").status == 200
        health = client.get("/health.json")
        assert health.status == 503
        assert health.json()["components"]["redis"]["ok"] is False
        _stop(proc, log)
