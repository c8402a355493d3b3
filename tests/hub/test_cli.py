"""The `hub` command as the device runs it: real processes, config from HUB_* variables."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.servers import free_port, hub_env
from tests.client import Client

ROOT = Path(__file__).resolve().parents[2]


def _hub(config, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hub", *args], cwd=ROOT, env=hub_env(config),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_web_serves_then_stops_cleanly_on_sigterm(hub_config, tmp_path):
    port = free_port()
    log = tmp_path / "web.log"
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen([sys.executable, "-m", "hub", "web", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, env=hub_env(hub_config),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        client = Client("127.0.0.1", port)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert client.get("/version").status == 200
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "hub web did not answer in 30 s"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "hub web stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_admin_create_user_then_reset_password(hub_config, ctx):
    create = _hub(hub_config, "admin", "create-user", "ops", "--password", "first-password")
    out = create.communicate(timeout=60)[0].decode()
    assert create.returncode == 0, out
    assert "admin=True" in out
    reset = _hub(hub_config, "admin", "reset-password", "ops", "--password", "second-password")
    assert reset.wait(timeout=60) == 0
    assert ctx.users.authenticate("ops", "second-password").username == "ops"


def test_config_error_is_one_line_and_exit_2(hub_config):
    env = {**hub_env(hub_config), "HUB_WEB_PORT": "eighty"}
    proc = subprocess.run([sys.executable, "-m", "hub", "admin", "show-config"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "[ERROR] HUB_WEB_PORT: web_port must be int, got 'eighty'"


def test_show_config_hides_secrets(hub_config):
    proc = subprocess.run([sys.executable, "-m", "hub", "admin", "show-config"], cwd=ROOT,
                          env=hub_env(hub_config), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert hub_config.db_password not in proc.stdout
    assert '"db_password": "***"' in proc.stdout




# --- issue 11 #14: the command on a development machine -------------------------------------

def test_hub_is_installed_as_a_command_in_the_venv():
    """`./build.sh test` installs the project (pip install --no-deps -e .) into its venv."""
    hub = Path(sys.executable).parent / "hub"
    assert hub.is_file(), "no `hub` console script: run ./build.sh test (it installs it)"
    done = subprocess.run([str(hub), "--help"], capture_output=True, text=True, check=False,
                          cwd="/")
    assert done.returncode == 0 and "{web,worker,admin}" in done.stdout, done.stderr


def test_pyproject_declares_the_console_script_and_no_unpinned_dependency():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"hub": "hub.cli:main"}
    assert project.get("dependencies", []) == []  # pinned in requirements-test.txt instead
    assert "--no-deps" in (ROOT / "build.sh").read_text()


def test_admin_without_a_config_file_says_what_to_do(tmp_path):
    env = {k: v for k, v in hub_env({}).items() if not k.startswith("HUB_")}
    env["HUB_DB_SOCKET"] = str(tmp_path / "no-such.sock")
    for config in ({}, {"HUB_CONFIG": ""}):
        done = subprocess.run([sys.executable, "-m", "hub", "admin", "list-users"], cwd=ROOT,
                              env={**env, **config}, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert "no config file was read" in done.stderr and "HUB_CONFIG" in done.stderr
        assert "/data/hub/hub.toml does not exist" in done.stderr


def test_admin_update_server_writes_the_agents_file(hub_config, tmp_path):
    """`hub admin update-server` leaves exactly what the update agent accepts, 0600, next to
    the agent's status file; bad values are refused with a message and write nothing."""
    import json
    import stat as stat_

    from ota.agent.config import validate

    agent_file = Path(hub_config["update_status_file"]).parent / "agent.json"
    token = "Tok3n-for-the-fleet_0123456789ab"
    done = _hub(hub_config, "admin", "update-server", "--url", "https://fleet.example:8060/",
                "--device-id", "cydynni-0042", "--token", token)
    out = done.communicate(timeout=60)[0].decode()
    assert done.returncode == 0, out
    assert token not in out and "restart the agent" in out
    assert stat_.S_IMODE(agent_file.stat().st_mode) == 0o600
    assert validate(json.loads(agent_file.read_text())) == {
        "server_url": "https://fleet.example:8060/", "tenant": "DEFAULT",
        "controller_id": "cydynni-0042", "token": token}
    for bad, says in ((["--url", "http://fleet.example/"], "plain http"),
                      (["--url", "https://fleet.example/", "--token", token + "x"], "token"),
                      (["--url", "https://fleet.example/?a=b"], "http(s)://")):
        args = ["--device-id", "cydynni-0042", "--token", token, *bad]
        refused = _hub(hub_config, "admin", "update-server", *args)
        out = refused.communicate(timeout=60)[0].decode()
        assert refused.returncode == 2 and says in out, out
    assert json.loads(agent_file.read_text())["server_url"] == "https://fleet.example:8060/"
