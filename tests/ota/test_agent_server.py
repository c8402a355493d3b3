"""The update agent against a real goosebit, through a fault-injecting proxy, with the real
rauc checking bundles. Threat list of shared/reference/ota.md §2 (T-numbers in the names).

The host kernel here has no dm-verity, so RAUC cannot mount a verity bundle to install it:
these tests stop before `rauc install` by letting the proxy say "maintenance window
unavailable" (a DDI feature the agent honours: download now, install later). Install, the
trial boot and the rollback run in the QEMU end-to-end test."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ota import bundle, keys
from ota.agent import core, statefile
from ota.agent.config import AgentConfig, ConfigError, Limits, validate
from ota.agent.core import Agent
from ota.agent.rauc import Rauc, RaucError
from ota.fleet import Goosebit as Fleet
from tests.ota.conftest import COMPATIBLE
from tests.ota.faultproxy import Faults, running
from tests.ota.goosebit import Goosebit

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@dataclass
class Hub:
    device: str
    token: str
    cfg: AgentConfig
    agent: Agent
    faults: Faults
    fleet: Fleet

    def server_view(self) -> dict:
        return next(d for d in self.fleet.devices() if d["id"] == self.device)

    def cycles(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.cycle()

    @property
    def phase(self) -> str:
        return self.agent.state.get("phase")

    @property
    def status(self) -> dict:
        return statefile.read_json(self.cfg.state_dir / "status.json") or {}


@pytest.fixture
def faults() -> Faults:
    return Faults(mode="pass", window_closed=True)


@pytest.fixture
def hub(tmp_path: Path, goosebit: Goosebit, fleet: Fleet, faults: Faults,
        dev_keys: keys.KeyDir) -> Iterator[Hub]:
    device, token = f"hub-{uuid.uuid4().hex[:10]}", secrets.token_hex(12)
    fleet.register(device, token)
    conf = tmp_path / "system.conf"
    conf.write_text(f"[system]\ncompatible={COMPATIBLE}\nbootloader=uboot\n")
    with running(goosebit.url, faults) as proxy:
        cfg = AgentConfig(server_url=proxy.url, tenant="DEFAULT", controller_id=device,
                          token=token, state_dir=tmp_path / "ota", keyring=dev_keys.ca_cert,
                          system_conf=conf, health_units=(), health_tcp=(),
                          limits=Limits(rate_window=1.0, min_rate_bytes=20_000, attempts=3))
        agent = Agent(cfg, sleep=lambda seconds: None)
        agent.cancel_check_seconds = 0.3
        hub = Hub(device, token, cfg, agent, faults, fleet)
        hub.cycles()  # registration: the agent sends its configData
        yield hub


def deploy(hub: Hub, publish, path: Path) -> None:
    hub.fleet.assign([hub.device], str(publish(path)))


def test_registers_with_inventory(hub: Hub) -> None:
    seen = hub.server_view()
    assert seen["hardware"]["model"] == COMPATIBLE  # hw_boardname from configData
    assert seen["last_state"] in ("1", 1, "Registered", "registered")


def test_downloads_checks_and_waits_for_the_maintenance_window(hub: Hub, publish,
                                                              make_bundle) -> None:
    path = make_bundle(counter=1000, display="ok")
    deploy(hub, publish, path)
    hub.cycles()
    assert hub.phase == "downloaded", hub.agent.state
    assert hub.status["state"] == "downloaded"
    assert hub.agent.bundle_path.read_bytes() == path.read_bytes()
    assert hub.agent.state["bundle_counter"] == 1000
    assert str(hub.server_view()["last_state"]).lower() in ("2", "running")  # proceeding


def test_waiting_for_the_maintenance_window_is_not_an_attempt(hub: Hub, publish,
                                                              make_bundle) -> None:
    """The loop guard counts downloads and installs, not polls: a hub whose window stays
    closed for longer than the guard's count keeps its download and reports no failure."""
    deploy(hub, publish, make_bundle(counter=1000, display="ok"))
    hub.cycles(core.MAX_TRANSITIONS + 5)
    assert hub.phase == "downloaded", hub.agent.state
    assert hub.agent.state["transitions"] == 1  # the one download
    assert hub.status["state"] == "downloaded" and hub.status.get("last_result") is None


def test_a_busy_rauc_is_recognised_by_its_own_words() -> None:
    """`rauc install` while RAUC's service still runs an install from before an agent
    restart answers this (RAUC's service.c); the agent then waits instead of failing."""
    busy = Rauc(command=("sh", "-c", "echo 'rauc-Message: Already processing a different "
                                     "method' >&2; exit 1", "rauc"))
    with pytest.raises(RaucError) as caught:
        busy.install(Path("/nonexistent.raucb"))
    assert caught.value.busy
    other = Rauc(command=("sh", "-c", "echo 'signature verification failed' >&2; exit 1",
                          "rauc"))
    with pytest.raises(RaucError) as caught:
        other.install(Path("/nonexistent.raucb"))
    assert not caught.value.busy


def expect_refused(hub: Hub, reason: str) -> None:
    assert hub.phase == "idle", hub.agent.state
    result = hub.status["last_result"]
    assert result["result"] == "failure" and reason in result["message"], result
    assert not hub.agent.bundle_path.exists()
    seen = hub.server_view()
    assert str(seen["last_state"]).lower() in ("3", "error"), seen  # closed/failure arrived


def test_t1_refuses_a_bundle_signed_with_another_key(hub: Hub, publish, make_bundle,
                                                      other_keys: keys.KeyDir) -> None:
    deploy(hub, publish, make_bundle(counter=1001, signer=other_keys, display="foreign"))
    hub.cycles()
    expect_refused(hub, "bundle refused before install")


def test_t1_refuses_an_unsigned_bundle(hub: Hub, publish, rootfs_image: Path,
                                       tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "manifest.raucm").write_text(bundle.manifest_text(
        COMPATIBLE, "1002.0.0+unsigned", "1002", "unsigned"))
    shutil.copy(rootfs_image, content / bundle.ROOTFS_NAME)
    unsigned = tmp_path / "unsigned.raucb"
    subprocess.run(["mksquashfs", content, unsigned, "-quiet", "-all-root"], check=True)
    deploy(hub, publish, unsigned)
    hub.cycles()
    expect_refused(hub, "bundle refused before install")


def test_t2_refuses_a_swapped_payload_by_hash(hub: Hub, publish, make_bundle) -> None:
    hub.faults.mode = "swap"
    hub.faults.swap_file = make_bundle(counter=1004, display="other")
    deploy(hub, publish, make_bundle(counter=1003, display="real"))
    hub.cycles()
    expect_refused(hub, "sha1 mismatch")


def test_t12_refuses_the_wrong_compatible(hub: Hub, publish, make_bundle,
                                          tmp_path: Path) -> None:
    # goosebit itself refuses to assign a release to hardware it does not match (422), so
    # the server here has a stale idea of the hub: it registered as one board and is now
    # another. The agent's own check (signed manifest vs system.conf) must still refuse.
    other = tmp_path / "other-system.conf"
    other.write_text("[system]\ncompatible=emonbase-rpi-arm64\n")
    hub.cfg.system_conf = other
    deploy(hub, publish, make_bundle(counter=1005))
    hub.cycles()
    expect_refused(hub, f"is for '{COMPATIBLE}', this hub is 'emonbase-rpi-arm64'")


def test_t4_refuses_an_older_build_before_downloading(hub: Hub, publish, make_bundle) -> None:
    (hub.cfg.state_dir / "floor").write_text("2000")
    deploy(hub, publish, make_bundle(counter=1006, display="old"))
    hub.cycles()
    expect_refused(hub, "below the installed floor 2000")
    assert hub.faults.downloads == 0


def test_t6_refuses_an_artifact_over_the_cap(hub: Hub, publish, make_bundle) -> None:
    hub.cfg.limits.max_bundle_bytes = 1000
    deploy(hub, publish, make_bundle(counter=1007))
    hub.cycles()
    assert hub.faults.downloads == 0
    assert "exceeds the cap" in hub.status["server_error"]
    assert hub.phase == "idle"


@pytest.mark.parametrize("mode,reason", [("oversized", "announces"),
                                         ("endless", "more than the announced")])
def test_t6_cuts_off_oversized_and_endless_bodies(hub: Hub, publish, make_bundle, mode: str,
                                                  reason: str) -> None:
    hub.faults.mode = mode
    deploy(hub, publish, make_bundle(counter=1008))
    hub.cycles()
    expect_refused(hub, reason)
    # A server that overshoots is refused, not retried: a retry would ask for a range past
    # the end, and its 416 would hide the cause. Nothing of its body stays on /data.
    assert (hub.faults.downloads, hub.faults.range_requests) == (1, 0)
    assert not list(hub.agent.bundle_path.parent.glob("*.partial"))


def test_t7_gives_up_on_a_slow_drip(hub: Hub, publish, make_bundle) -> None:
    hub.faults.mode, hub.faults.drip_interval = "drip", 0.05
    deploy(hub, publish, make_bundle(counter=1009))
    hub.cycles()
    expect_refused(hub, "too slow")


def test_t7_survives_a_server_failing_every_other_request(hub: Hub, publish,
                                                          make_bundle) -> None:
    hub.faults.mode = "error_every_other"
    deploy(hub, publish, make_bundle(counter=1010))
    for _ in range(12):
        hub.cycles()
        if hub.phase == "downloaded":
            break
    assert hub.phase == "downloaded", hub.agent.state
    assert hub.agent.state.get("bundle_counter") == 1010


def test_t7_resumes_after_a_disconnect_with_a_range_request(hub: Hub, publish,
                                                            make_bundle) -> None:
    path = make_bundle(counter=1011)
    hub.faults.mode, hub.faults.truncate_at = "truncate", path.stat().st_size // 2
    deploy(hub, publish, path)
    hub.cycles()
    assert hub.faults.range_requests >= 1 and hub.faults.truncated
    assert hub.agent.bundle_path.read_bytes() == path.read_bytes()
    assert "attempt 1" in " ".join(hub.agent.state["notes"])


def test_cancel_before_the_download(hub: Hub, publish, make_bundle) -> None:
    deploy(hub, publish, make_bundle(counter=1012))
    hub.fleet.call("PATCH", "/devices", {"devices": [hub.device], "pinned": True})
    hub.cycles()
    assert hub.phase == "idle" and hub.faults.downloads == 0


def test_cancel_during_the_download(hub: Hub, publish, make_bundle) -> None:
    hub.faults.mode, hub.faults.drip_interval = "drip", 0.001
    hub.cfg.limits.min_rate_bytes = 1
    deploy(hub, publish, make_bundle(counter=1013))
    timer = threading.Timer(1.0, lambda: hub.fleet.call(
        "PATCH", "/devices", {"devices": [hub.device], "pinned": True}))
    timer.start()
    hub.cycles()
    timer.join()
    assert hub.phase == "idle", hub.agent.state
    assert hub.status["last_result"]["result"] == "cancelled"
    assert not list(hub.agent.bundle_path.parent.glob("*.partial"))


def test_wrong_token_is_an_error_not_a_crash(hub: Hub) -> None:
    hub.agent.cfg.token = "not-the-token"
    hub.cycles()
    assert "token" in hub.status["server_error"]


def test_missing_or_malformed_token_is_refused_by_the_config() -> None:
    base = {"server_url": "http://127.0.0.1:1", "controller_id": "hub1"}
    for token in (None, "", "x" * 33, "bad token", "tok\n"):
        with pytest.raises(ConfigError, match="token"):
            validate({**base, "token": token} if token is not None else base)


@pytest.mark.parametrize("step", ["downloading", "downloaded"])
def test_sigkill_during_the_download_resumes_and_reports_nothing_false(
        hub: Hub, publish, make_bundle, step: str, tmp_path: Path) -> None:
    path = make_bundle(counter=1014 if step == "downloading" else 1015)
    hub.cfg.limits.min_rate_bytes = 1
    deploy(hub, publish, path)
    config = hub.cfg.state_dir / "agent.json"
    statefile.write_json(config, {"server_url": hub.cfg.server_url, "tenant": "DEFAULT",
                                  "controller_id": hub.device, "token": hub.token})
    argv = [sys.executable, "-m", "ota.agent", "once", "--config", config,
            "--keyring", hub.cfg.keyring, "--system-conf", hub.cfg.system_conf]
    killed = subprocess.run(argv, cwd=REPO, env={**os.environ, "OTA_FAULT_AT": step},
                            capture_output=True, timeout=120, check=False)
    assert killed.returncode == -9
    assert str(hub.server_view()["last_state"]).lower() not in ("4", "finished", "3", "error")
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                           check=False)
    assert again.returncode == 0, again.stderr
    state = statefile.read_json(hub.cfg.state_dir / "state.json")
    assert state["phase"] == "downloaded", state
    assert hub.agent.bundle_path.read_bytes() == path.read_bytes()


def test_t14_hostile_deployment_answers_only_raise_server_errors(hub: Hub) -> None:
    import random

    from ota.agent.ddi import DdiClient
    from ota.errors import ServerError
    client = DdiClient(hub.cfg)
    good = {"id": "7", "deployment": {"download": "forced", "update": "forced", "chunks": [
        {"part": "os", "version": "5.0.0", "name": "b", "artifacts": [
            {"filename": "b.raucb", "size": 10, "hashes": {"sha1": "a" * 40},
             "_links": {"download": {"href": hub.cfg.server_url + "/x/download"}}}]}]}}
    client.parse_deployment(json.loads(json.dumps(good)), hub.cfg.server_url + "/d/7")
    values = [None, 0, -1, 2**70, "", "x" * 5000, [], {}, [1], {"a": 1}, True, 1.5,
              "http://evil.example/x", "forced"]
    rng = random.Random(1)
    for _ in range(3000):
        answer = json.loads(json.dumps(good))
        node = answer
        path = [rng.choice(["id", "deployment"])]
        if path[0] == "deployment":
            path += rng.choice([["chunks"], ["chunks", 0], ["chunks", 0, "artifacts"],
                                ["chunks", 0, "artifacts", 0],
                                ["chunks", 0, "artifacts", 0, "size"],
                                ["chunks", 0, "artifacts", 0, "hashes"],
                                ["chunks", 0, "artifacts", 0, "_links"],
                                ["chunks", 0, "artifacts", 0, "_links", "download"],
                                ["download"], ["maintenanceWindow"]])
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = rng.choice(values)
        with contextlib.suppress(ServerError):
            client.parse_deployment(answer, hub.cfg.server_url + "/d/7")
