"""The hub's update API and the real update agent, talking only through their files
(ota/README.md), with a real goosebit behind the fault proxy: a soft ("attempt") deployment
shows in GET /update/status.json, and the administrator's POST /update/install.json is the
consent that makes the agent go on to the trial reboot. A household can see but not consent.

As in test_agent_server.py, the host cannot `rauc install` a verity bundle: the agent
downloads and checks the bundle with the maintenance window closed, then the test stands
where `rauc install` leaves the agent (phase "installed"), exactly as test_agent_trial.py
stands where the reboot leaves it."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest

from ota import keys
from ota.agent.config import AgentConfig, Limits
from ota.agent.core import Agent
from ota.fleet import Goosebit as Fleet
from tests.conftest import make_account
from tests.ota.conftest import COMPATIBLE
from tests.ota.faultproxy import Faults, running
from tests.ota.goosebit import Goosebit

pytestmark = pytest.mark.slow


def test_soft_update_shows_in_the_api_and_the_admins_install_is_the_consent(
        tmp_path: Path, goosebit: Goosebit, fleet: Fleet, publish, make_bundle,
        dev_keys: keys.KeyDir, ctx, admin, new_client) -> None:
    ota_dir = Path(ctx.config.update_status_file).parent  # the hub reads the agent's files
    (ota_dir / "request").mkdir(parents=True)  # tmpfiles makes it on the device
    household = make_account(new_client, "household", by=admin.client)
    assert admin.client.get("/update/status.json").json()["state"] == "not_set_up"

    device, token = f"hub-{uuid.uuid4().hex[:10]}", secrets.token_hex(12)
    fleet.register(device, token)
    conf = tmp_path / "system.conf"
    conf.write_text(f"[system]\ncompatible={COMPATIBLE}\n")
    rebooted = tmp_path / "rebooted"
    with running(goosebit.url, Faults(window_closed=True, update_mode="attempt")) as proxy:
        cfg = AgentConfig(server_url=proxy.url, tenant="DEFAULT", controller_id=device,
                          token=token, state_dir=ota_dir, keyring=dev_keys.ca_cert,
                          system_conf=conf, health_units=(), health_tcp=(),
                          reboot_command=("touch", str(rebooted)),
                          limits=Limits(rate_window=1.0, min_rate_bytes=1))
        agent = Agent(cfg, sleep=lambda seconds: None)
        agent.cycle()  # registration
        idle = household.client.get("/update/status.json").json()
        assert idle["state"] == "idle" and idle["available"] is None and idle["last_poll"]

        bundle = make_bundle(counter=4000, display="soft")
        fleet.assign([device], str(publish(bundle)))
        assert admin.client.post("/update/check.json").status == 200
        assert agent.take_request() is True  # the agent's loop polls at once
        agent.cycle()
        assert agent.state["phase"] == "downloaded", agent.state
        seen = household.client.get("/update/status.json").json()
        assert seen["state"] == "downloaded" and seen["server_error"] is None
        assert seen["available"]["version"] == "4000.0.0+soft"
        assert seen["available"]["mode"] == "attempt"
        action_id = seen["available"]["action_id"]
        early = admin.client.post("/update/install.json", {"action_id": action_id})
        assert early.status == 409  # nothing installed yet: no consent to give

        # what `rauc install` leaves behind (see the module docstring)
        agent.save(phase="installed", from_slot="A", target_slot="B")
        agent.cycle()
        waiting = household.client.get("/update/status.json").json()
        assert waiting["state"] == "waiting_for_reboot" and waiting["can_install"] is True
        assert not rebooted.exists()
        refused = household.client.post("/update/install.json", {"action_id": action_id})
        assert refused.status == 403
        agent.cycle()
        assert agent.state["phase"] == "installed" and not rebooted.exists()  # still waiting

        consent = admin.client.post("/update/install.json", {"action_id": action_id})
        assert consent.status == 200, consent.text
        assert consent.json()["version"] == "4000.0.0+soft"
        assert agent.take_request() is True
        agent.cycle()
        assert rebooted.exists(), "the agent did not reboot into the trial"
        assert agent.state["phase"] == "trial"
        after = admin.client.get("/update/status.json").json()
        assert after["state"] == "rebooting" and after["can_install"] is False
        assert not agent.request_path.exists()  # the agent took the request
