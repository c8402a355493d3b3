"""The /data tree as the image's tmpfiles.d/cydynni-data.conf makes it (the real
systemd-tmpfiles, into a scratch root), then who may do what in /data/ota: the hub user leaves
the update agent a request and reads its status, and can neither read the agent's token
(agent.json, 0600) nor replace or add anything else there (ota/README.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota.agent import statefile

REPO = Path(__file__).resolve().parents[2]
TMPFILES = REPO / "overlays/rootfs/usr/lib/tmpfiles.d/cydynni-data.conf"
HUB_UID = 64990  # the scratch root's cydynni user; nobody on the host has it

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("systemd-tmpfiles") or not shutil.which("setpriv"),
    reason="needs root, systemd-tmpfiles and setpriv (util-linux)")

AS_THE_HUB = """
import json, os, sys
from pathlib import Path
from hub.update.agent import UpdateAgent
ota = Path(sys.argv[1])
out = {"status": UpdateAgent(ota / "status.json").status().state}
UpdateAgent(ota / "status.json").check_now()
out["request"] = json.loads((ota / "request" / "request.json").read_text())
def attempt(name, action):
    try:
        action()
        out[name] = "allowed"
    except PermissionError:
        out[name] = "denied"
attempt("read agent.json", lambda: (ota / "agent.json").read_text())
attempt("read state.json", lambda: (ota / "state.json").read_text())
attempt("create in /data/ota", lambda: (ota / ".state.json.tmp").write_text("{}"))
attempt("replace status.json", lambda: os.replace(ota / "request" / "request.json",
                                                  ota / "status.json"))
attempt("write floor", lambda: (ota / "floor").write_text("0"))
print(json.dumps(out))
"""


@pytest.fixture
def root() -> Iterator[Path]:
    """A scratch root the unprivileged hub user can walk into (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="cydynni-root-"))
    try:
        path.chmod(0o755)
        (path / "etc").mkdir()
        (path / "etc/passwd").write_text(
            f"root:x:0:0::/root:/bin/sh\ncydynni:x:{HUB_UID}:{HUB_UID}::/:/usr/sbin/nologin\n"
            f"mosquitto:x:{HUB_UID + 1}:{HUB_UID + 1}::/:/usr/sbin/nologin\n")
        (path / "etc/group").write_text(f"root:x:0:\ncydynni:x:{HUB_UID}:\n"
                                        f"mosquitto:x:{HUB_UID + 1}:\n"
                                        f"systemd-journal:x:{HUB_UID + 2}:\n")
        subprocess.run(["systemd-tmpfiles", "--create", f"--root={path}", TMPFILES],
                       check=True, capture_output=True)
        yield path
    finally:
        shutil.rmtree(path)


def test_the_hub_user_writes_requests_and_nothing_else_in_data_ota(root: Path) -> None:
    ota = root / "data/ota"
    request_dir = ota / "request"
    assert (ota.stat().st_mode & 0o7777, ota.stat().st_uid) == (0o755, 0)
    info = request_dir.stat()
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o770, 0, HUB_UID)
    # what the agent (root) keeps there, with the modes it writes them
    statefile.write_json(ota / "agent.json", {"token": "secret-token"})
    statefile.write_json(ota / "state.json", {"phase": "idle"})
    statefile.write_json(ota / "status.json", {"state": "idle"}, mode=0o644)

    result = subprocess.run(
        ["setpriv", f"--reuid={HUB_UID}", f"--regid={HUB_UID}", "--clear-groups",
         sys.executable, "-c", AS_THE_HUB, str(ota)],
        capture_output=True, text=True, check=False, cwd=root,
        env={"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"status": "idle", "request": {"action": "check_now"},
                    "read agent.json": "denied", "read state.json": "denied",
                    "create in /data/ota": "denied", "replace status.json": "denied",
                    "write floor": "denied"}
    # and the agent, as root, takes what the hub user wrote
    assert statefile.read_untrusted_json(request_dir / "request.json") == {
        "action": "check_now"}
    assert json.loads((ota / "status.json").read_text()) == {"state": "idle"}
