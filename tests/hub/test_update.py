"""The hub's side of the update agent (hub/update/agent.py, hub/web/update.py) with real files:
status written by the agent's own code is parsed as the agent meant it; hostile status files
give a clear "unknown" state, never an exception or a 500; requests the hub writes are what
the agent's own reader takes; only an administrator acts, and only on the update the agent
reports. The agent code is imported here (tests may); hub/ itself never imports ota/."""

from __future__ import annotations

import ast
import json
import os
import threading
from pathlib import Path

import pytest

from hub.update.agent import (
    STATES,
    UpdateAgent,
    UpdateRequestError,
    write_atomically,
)
from ota.agent import statefile
from ota.agent.config import AgentConfig
from ota.agent.core import Agent
from tests.conftest import make_account

REPO = Path(__file__).resolve().parents[2]

AVAILABLE = {"version": "202612031200.0.0+20261203-gabc", "action_id": "7", "size": 1000,
             "mode": "attempt"}


@pytest.fixture
def ota_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ota"
    (directory / "request").mkdir(parents=True)
    return directory


@pytest.fixture
def agent(ota_dir: Path) -> Agent:
    """The real agent's state machine on `ota_dir` (no server is contacted here)."""
    cfg = AgentConfig(server_url="http://127.0.0.1:9", tenant="DEFAULT",
                      controller_id="hub-test",
                      token="t" * 24, state_dir=ota_dir, health_units=(), health_tcp=())
    return Agent(cfg, sleep=lambda seconds: None)


def model(ota_dir: Path) -> UpdateAgent:
    return UpdateAgent(ota_dir / "status.json")


def test_the_hub_imports_nothing_of_ota() -> None:
    found = []
    for path in (REPO / "hub").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(REPO)}: {n}" for n in names
                      if n == "ota" or n.startswith("ota.")]
    assert not found


# -- status: what the agent writes, read back -------------------------------------------------

def test_status_written_by_the_agent_is_read_field_by_field(agent: Agent, ota_dir: Path) -> None:
    agent.publish("downloading", installed={"slot": "A", "build_counter": 202612021400,
                                            "version": "202612021400.0.0+x"},
                  available=AVAILABLE, progress={"bytes": 400, "of": 1000, "percent": 40},
                  last_poll="2026-12-02T14:00:00Z", server_error=None)
    seen = model(ota_dir).status()
    assert seen.state == "downloading" and seen.errors == []
    assert (seen.installed.slot, seen.installed.build_counter, seen.installed.version) == (
        "A", 202612021400, "202612021400.0.0+x")
    assert seen.available.action_id == "7" and seen.available.mode == "attempt"
    assert seen.progress.percent == 40 and seen.last_poll == "2026-12-02T14:00:00Z"
    assert seen.can_cancel and not seen.awaits_consent


def test_a_dropped_download_shows_its_result(agent: Agent, ota_dir: Path) -> None:
    agent.publish("downloading", available=AVAILABLE, progress={"bytes": 1, "of": 9,
                                                                "percent": 11})
    agent._drop("cancelled by the server")  # the agent's own path: idle, result "cancelled"
    seen = model(ota_dir).status()
    assert seen.state == "idle" and seen.available is None and seen.progress is None
    assert seen.last_result.result == "cancelled"
    assert seen.last_result.message == "cancelled by the server"


def test_unconfigured_as_the_agent_writes_it(ota_dir: Path) -> None:
    statefile.write_json(ota_dir / "status.json", {"state": "unconfigured",
                                                   "message": "no server_url"}, mode=0o644)
    seen = model(ota_dir).status()
    assert seen.state == "unconfigured" and seen.message == "no server_url"
    with pytest.raises(UpdateRequestError, match="no server configured"):
        model(ota_dir).check_now()


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b'{"state": "idle", "installed": {"slo', "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b'{"state": NaN}', "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, "larger than"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "not valid JSON"),
    (b'{"state": "hacked"}', "unknown state 'hacked'"),
])
def test_a_hostile_or_torn_status_is_unknown_with_the_reason(ota_dir: Path, content: bytes,
                                                             reason: str) -> None:
    (ota_dir / "status.json").write_bytes(content)
    seen = model(ota_dir).status()
    assert seen.state == "unknown"
    assert reason in " ".join(seen.errors)
    assert json.dumps(seen.as_json())  # always serialisable
    with pytest.raises(UpdateRequestError, match="cannot be read"):
        model(ota_dir).check_now()


def test_a_fifo_or_a_device_does_not_block_the_hub(ota_dir: Path) -> None:
    os.mkfifo(ota_dir / "status.json")
    assert model(ota_dir).status().errors == ["status file unreadable: not a regular file"]
    (ota_dir / "status.json").unlink()
    (ota_dir / "status.json").symlink_to("/dev/zero")
    assert model(ota_dir).status().state == "unknown"


def test_missing_file_or_setting_is_not_set_up(ota_dir: Path) -> None:
    assert model(ota_dir).status().state == "not_set_up"
    assert UpdateAgent(None).status().state == "not_set_up"
    with pytest.raises(UpdateRequestError, match="not set up"):
        UpdateAgent(None).check_now()


@pytest.mark.parametrize("field,value", [
    ("installed", "1.2.0"), ("installed", {"slot": 5}), ("installed", {"build_counter": "x"}),
    ("available", "1.3.0"), ("available", {"version": "1.3"}),
    ("available", {"version": "1", "action_id": "../../etc"}),
    ("progress", 40), ("progress", {"bytes": 1, "percent": 400}),
    ("progress", {"bytes": True}), ("last_result", "installed"),
    ("last_result", {"result": "pwned"}), ("last_result", {"result": "success", "log": "x"}),
    ("last_poll", 12), ("last_poll", "yesterday"), ("server_error", ["x"]),
])
def test_a_field_of_the_wrong_type_is_dropped_and_named(ota_dir: Path, field: str,
                                                        value: object) -> None:
    statefile.write_json(ota_dir / "status.json", {"state": "downloading", field: value},
                         mode=0o644)
    seen = model(ota_dir).status()
    assert seen.state == "downloading"
    assert getattr(seen, field) is None
    assert any(e.startswith(field) for e in seen.errors), seen.errors


def test_text_is_one_line_and_bounded(ota_dir: Path) -> None:
    statefile.write_json(ota_dir / "status.json", {"state": "error", "last_result": {
        "result": "failure", "message": "a\nb\x1b[31m" + "x" * 5000,
        "log": [f"line {i}" for i in range(50)] + [7]}}, mode=0o644)
    result = model(ota_dir).status().last_result
    assert "\n" not in result.message and "\x1b" not in result.message
    assert len(result.message) <= 500
    assert result.log == [f"line {i}" for i in range(40, 50)]


# -- requests: what the hub writes is what the agent takes ------------------------------------

def test_check_now_is_taken_by_the_agents_own_reader(agent: Agent, ota_dir: Path) -> None:
    agent.publish("idle", installed={"slot": "A", "build_counter": 1, "version": "1"})
    model(ota_dir).check_now()
    assert agent.request() == {"action": "check_now"}
    assert agent.take_request() is True  # a poll now; the request is used up
    assert not agent.request_path.exists()
    assert sorted(p.name for p in (ota_dir / "request").iterdir()) == []  # no temporary left


def test_consent_only_for_the_installed_update_the_agent_reports(agent: Agent,
                                                                  ota_dir: Path) -> None:
    hub = model(ota_dir)
    agent.publish("downloaded", available=AVAILABLE)
    with pytest.raises(UpdateRequestError, match="no update is waiting"):
        hub.install_now()
    # what the agent leaves after `rauc install` of a soft update: it waits for consent
    agent.save(phase="installed", action={"id": "7", "update": "attempt"})
    agent.publish("waiting_for_reboot")
    with pytest.raises(UpdateRequestError, match="'8' is not the one available"):
        hub.install_now("8")
    assert not agent.request_path.exists()
    assert hub.install_now("7").version == AVAILABLE["version"]
    assert hub.install_now().action_id == "7"  # without the guard: still only that one
    assert agent._consented("8") is False
    assert agent._consented("7") is True and not agent.request_path.exists()


def test_a_stale_consent_or_cancel_is_dropped_by_the_agent(agent: Agent, ota_dir: Path) -> None:
    agent.publish("downloading", available=AVAILABLE, progress={"bytes": 1, "of": 2,
                                                                "percent": 50})
    model(ota_dir).cancel()
    assert agent._cancelled("7") is True  # during the download it stops it
    model(ota_dir).cancel()
    agent.publish("idle", progress=None)
    assert agent.take_request() is False and not agent.request_path.exists()


def test_the_agent_does_not_follow_a_link_or_read_a_fifo_as_the_request(agent: Agent,
                                                                         ota_dir: Path) -> None:
    secret = ota_dir / "agent.json"
    statefile.write_json(secret, {"action": "check_now"})
    agent.request_path.symlink_to(secret)
    assert agent.request() == {}
    assert agent.take_request() is False and not agent.request_path.is_symlink()
    assert secret.exists()
    os.mkfifo(agent.request_path)
    assert agent.request() == {}  # returns at once
    agent.request_path.unlink()


def test_concurrent_writers_leave_one_whole_request(agent: Agent, ota_dir: Path) -> None:
    agent.publish("downloading", available=AVAILABLE)
    hub, errors = model(ota_dir), []

    def write(n: int) -> None:
        try:
            for _ in range(n):
                hub.check_now() if n % 2 else hub.cancel()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(20 + i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert agent.request()["action"] in ("check_now", "cancel")
    assert [p.name for p in (ota_dir / "request").iterdir()] == ["request.json"]


# -- the API ----------------------------------------------------------------------------------

def test_states_are_documented() -> None:
    from hub.web.openapi import UPDATE_STATUS
    assert UPDATE_STATUS["properties"]["state"]["enum"] == list(STATES)


def test_api_status_for_any_reader_actions_for_the_admin_only(admin, new_client, client,
                                                              ctx) -> None:
    ota = Path(ctx.config.update_status_file).parent
    missing = admin.client.get("/update/status.json")
    assert missing.status == 200 and missing.json()["state"] == "not_set_up"
    assert admin.client.post("/update/check.json").status == 409
    (ota / "request").mkdir(parents=True)
    statefile.write_json(ota / "status.json", {"state": "waiting_for_reboot",
                                               "available": AVAILABLE}, mode=0o644)
    household = make_account(new_client, "household", by=admin.client)
    for who in (household.client.get("/update/status.json"),
                client.get("/update/status.json", {"apikey": household.apikey_read})):
        assert who.status == 200
        doc = who.json()
        assert doc["state"] == "waiting_for_reboot" and doc["can_install"] is True
        assert doc["available"]["version"] == AVAILABLE["version"]
    assert client.get("/update/status.json").status == 401
    for path in ("/update/check.json", "/update/install.json", "/update/cancel.json"):
        denied = household.client.post(path, {"action_id": "7"})
        assert denied.status == 403 and denied.json()["success"] is False, path
        keyed = client.post(path, {"apikey": household.apikey_write})
        assert keyed.status == 403, path
    assert not (ota / "request" / "request.json").exists()
    wrong = admin.client.post("/update/install.json", {"action_id": "6"})
    assert wrong.status == 409 and "not the one available" in wrong.json()["message"]
    done = admin.client.post("/update/install.json", {"action_id": "7"})
    assert done.status == 200 and done.json()["version"] == AVAILABLE["version"]
    assert json.loads((ota / "request" / "request.json").read_text()) == {
        "action": "install_now", "action_id": "7"}
    nothing = admin.client.post("/update/cancel.json")
    assert nothing.status == 409 and nothing.json() == {
        "success": False, "message": "nothing to stop (state: waiting_for_reboot)"}
    (ota / "status.json").write_text('{"state": ')
    torn = admin.client.get("/update/status.json")
    assert torn.status == 200 and torn.json()["state"] == "unknown"


def test_api_says_when_the_request_cannot_be_written(admin, ctx) -> None:
    ota = Path(ctx.config.update_status_file).parent
    ota.mkdir(parents=True)
    statefile.write_json(ota / "status.json", {"state": "idle"}, mode=0o644)
    answer = admin.client.post("/update/check.json")  # no request directory: no tmpfiles
    assert answer.status == 503 and "cannot leave the update agent a request" in answer.json()[
        "message"]


def test_write_atomically_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "request.json"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == [
        "request.json"]
