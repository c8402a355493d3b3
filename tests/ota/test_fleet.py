"""Support staff's commands against a real goosebit: status, a rollout to a feed, and
`watch` advancing canary → pilot and pausing on failures (goosebit has no automatic abort).
Hubs are played by DDI clients that report outcomes the way the agent does."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest

from ota.agent.config import AgentConfig
from ota.agent.ddi import DdiClient
from ota.fleet import Goosebit as Fleet
from ota.fleet import fleet_status, watch_step
from tests.ota.conftest import COMPATIBLE
from tests.ota.goosebit import Goosebit

pytestmark = pytest.mark.slow


def hub(goosebit: Goosebit, fleet: Fleet, feed: str, tmp_path: Path) -> DdiClient:
    device, token = f"{feed}-{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    fleet.register(device, token, feed)
    client = DdiClient(AgentConfig(server_url=goosebit.url, tenant="DEFAULT",
                                   controller_id=device, token=token, state_dir=tmp_path))
    poll = client.poll()
    client.send_config_data(poll.config_data_url, {"hw_boardname": COMPATIBLE,
                                                   "hw_revision": "default", "sw_version": "1.0.0"})
    return client


def report(client: DdiClient, result: str) -> None:
    poll = client.poll()
    assert poll.deployment_url, "the rollout offers the release to this hub"
    dep = client.deployment(poll.deployment_url)
    client.feedback(dep.feedback_url, dep.action_id, "proceeding", "none", ["downloading"])
    client.feedback(dep.feedback_url, dep.action_id, "closed", result, [f"test {result}"])


def test_staged_rollout_advances_then_pauses_on_failures(goosebit: Goosebit, fleet: Fleet,
                                                         publish, make_bundle,
                                                         tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    canary, pilot = f"canary{tag}", f"pilot{tag}"
    canaries = [hub(goosebit, fleet, canary, tmp_path) for _ in range(2)]
    pilots = [hub(goosebit, fleet, pilot, tmp_path) for _ in range(2)]
    software = publish(make_bundle(counter=5000, display=f"rollout{tag}"))
    stages = [canary, pilot]

    assert watch_step(fleet, software, stages, 0.2) == {"action": "started", "feed": canary}
    for client in pilots:
        assert client.poll().deployment_url is None  # not their turn yet
    assert watch_step(fleet, software, stages, 0.2)["action"] == "waiting"
    for client in canaries:
        report(client, "success")
    assert watch_step(fleet, software, stages, 0.2) == {"action": "started", "feed": pilot}
    report(pilots[0], "failure")  # 1 of 2 pilots failed: 50 % > 20 %
    step = watch_step(fleet, software, stages, 0.2)
    assert step["action"] == "paused" and step["feed"] == pilot, step
    assert pilots[1].poll().deployment_url is None  # paused: no more hubs get it
    rows = {row["hub"]: row for row in fleet_status(fleet)}
    assert rows[canaries[0].cfg.controller_id]["state"].lower() in ("finished", "4")
    assert rows[pilots[0].cfg.controller_id]["state"].lower() in ("error", "3")
    assert "test failure" in (rows[pilots[0].cfg.controller_id]["last_error"] or "")
