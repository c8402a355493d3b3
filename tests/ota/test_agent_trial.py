"""The trial boot, judged by `ota.agent commit` against a real RAUC service (file-backed
slots, U-Boot env file written by the real fw_setenv) and a real goosebit.

Each test first takes a real deployment as far as this host allows (download and RAUC
check, maintenance window closed), then stands where the device stands after `rauc
install` and the reboot: state "trial", RAUC booted into the target slot (or, for the
fallback case, back in the old one). The stand-in for the hub is a small /health.json
responder: the health check's verdict is what is under test, not the hub."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ota import keys
from ota.agent import statefile
from ota.agent.config import AgentConfig, Limits
from ota.agent.core import Agent
from ota.fleet import Goosebit as Fleet
from tests.ota import raucservice
from tests.ota.conftest import COMPATIBLE
from tests.ota.faultproxy import Faults, running
from tests.ota.goosebit import Goosebit

pytestmark = pytest.mark.slow


class Health(ThreadingHTTPServer):
    healthy = True


class HealthHandler(BaseHTTPRequestHandler):
    server: Health

    def log_message(self, fmt: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        ok = self.server.healthy
        body = json.dumps({"ok": ok, "components": {
            "database": {"ok": True}, "redis": {"ok": True},
            "worker": {"ok": ok, **({} if ok else {"error": "no heartbeat from `hub worker`"})},
        }}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def health() -> Iterator[Health]:
    server = Health(("127.0.0.1", 0), HealthHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def downloaded_agent(tmp_path: Path, goosebit: Goosebit, fleet: Fleet, publish, bundle: Path,
                     keyring: Path, health_url: str, proxy_url: str) -> tuple[Agent, str]:
    device, token = f"hub-{uuid.uuid4().hex[:10]}", secrets.token_hex(12)
    fleet.register(device, token)
    conf = tmp_path / "system.conf"
    conf.write_text(f"[system]\ncompatible={COMPATIBLE}\n")
    marker = tmp_path / "rebooted"
    cfg = AgentConfig(server_url=proxy_url, tenant="DEFAULT", controller_id=device, token=token,
                      state_dir=tmp_path / "ota", keyring=keyring, system_conf=conf,
                      hub_health_url=health_url, health_units=(), health_tcp=(),
                      health_deadline=1.0, reboot_command=("touch", str(marker)),
                      limits=Limits(rate_window=1.0, min_rate_bytes=1))
    agent = Agent(cfg, sleep=lambda seconds: None)
    agent.cycle()  # registration
    fleet.assign([device], str(publish(bundle)))
    agent.cycle()
    assert agent.state["phase"] == "downloaded", agent.state
    # what `rauc install` + the reboot leave behind (see the module docstring)
    agent.save(phase="trial", from_slot="A", target_slot="B")
    return agent, device


def device_view(fleet: Fleet, device: str) -> dict:
    return next(d for d in fleet.devices() if d["id"] == device)


@pytest.fixture
def proxy(goosebit: Goosebit) -> Iterator[str]:
    with running(goosebit.url, Faults(window_closed=True)) as server:
        yield server.url


@pytest.mark.parametrize("healthy", [True, False], ids=["healthy", "broken"])
def test_trial_boot_commits_or_rolls_back(tmp_path: Path, goosebit: Goosebit, fleet: Fleet,
                                          publish, make_bundle, dev_keys: keys.KeyDir,
                                          health: Health, proxy: str, monkeypatch,
                                          healthy: bool) -> None:
    bundle = make_bundle(counter=3000 + healthy, display="trial")
    agent, device = downloaded_agent(tmp_path, goosebit, fleet, publish, bundle,
                                     dev_keys.ca_cert, f"http://127.0.0.1:{health.server_port}",
                                     proxy)
    health.healthy = healthy
    env = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2"}  # U-Boot took a try
    with raucservice.running(tmp_path / "rauc", dev_keys.ca_cert, "B", env) as rauc:
        for key, value in rauc.env.items():
            monkeypatch.setenv(key, value)
        assert agent.commit() == (0 if healthy else 1)
        boot = rauc.fw_env()
    status = statefile.read_json(agent.status_path)
    seen = device_view(fleet, device)
    assert agent.state == {"phase": "idle"}  # the outcome was delivered
    if healthy:
        assert boot["BOOT_B_LEFT"] == "3" and boot["BOOT_ORDER"].startswith("B")
        assert (agent.floor_path.read_text()) == str(3000 + healthy)
        assert status["state"] == "done" and status["last_result"]["result"] == "success"
        assert str(seen["last_state"]).lower() in ("4", "finished")
        assert seen["sw_version"] == f"{3000 + healthy}.0.0+trial"
        assert not (tmp_path / "rebooted").exists()
    else:
        assert boot["BOOT_B_LEFT"] == "0" and boot["BOOT_ORDER"] == "A"
        assert not agent.floor_path.exists()  # the floor rises only after a commit
        assert status["state"] == "rolled_back"
        assert "no heartbeat" in " ".join(status["last_result"]["log"])
        assert str(seen["last_state"]).lower() in ("3", "error")
        assert (tmp_path / "rebooted").exists()


def test_bootloader_fallback_is_reported_as_failure(tmp_path: Path, goosebit: Goosebit,
                                                    fleet: Fleet, publish, make_bundle,
                                                    dev_keys: keys.KeyDir, health: Health,
                                                    proxy: str, monkeypatch) -> None:
    agent, device = downloaded_agent(tmp_path, goosebit, fleet, publish,
                                     make_bundle(counter=3005, display="panics"),
                                     dev_keys.ca_cert, f"http://127.0.0.1:{health.server_port}",
                                     proxy)
    # B never came up: U-Boot used its three tries and booted A again
    env = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "0"}
    with raucservice.running(tmp_path / "rauc", dev_keys.ca_cert, "A", env) as rauc:
        for key, value in rauc.env.items():
            monkeypatch.setenv(key, value)
        assert agent.commit() == 0  # A is healthy and confirmed again
        boot = rauc.fw_env()
    assert boot["BOOT_A_LEFT"] == "3"
    status = statefile.read_json(agent.status_path)
    assert status["state"] == "rolled_back"
    assert "did not come up" in status["last_result"]["message"]
    assert str(device_view(fleet, device)["last_state"]).lower() in ("3", "error")


def test_no_new_install_while_a_trial_is_pending(tmp_path: Path, goosebit: Goosebit,
                                                 fleet: Fleet, publish, make_bundle,
                                                 dev_keys: keys.KeyDir, health: Health,
                                                 proxy: str) -> None:
    agent, device = downloaded_agent(tmp_path, goosebit, fleet, publish,
                                     make_bundle(counter=3006, display="pending"),
                                     dev_keys.ca_cert, f"http://127.0.0.1:{health.server_port}",
                                     proxy)
    fleet.assign([device], str(publish(make_bundle(counter=3007, display="newer"))))
    before = dict(agent.state)
    agent.cycle()  # a trial is pending: the agent asks for the reboot, touches nothing else
    assert agent.state["action"] == before["action"]
    assert agent.state["phase"] == "trial"
