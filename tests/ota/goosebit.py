"""A real goosebit (hawkBit DDI server) on 127.0.0.1 for the OTA tests, in its own venv.

    python3 -m tests.ota.goosebit ensure-venv      # what ./build.sh test runs
    with Goosebit.start(tmp_dir) as server: ...    # SQLite db, artifacts dir, strict tokens
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("GOOSEBIT_VENV", REPO / ".venv-goosebit"))
REQUIREMENTS = Path(__file__).with_name("requirements-goosebit.txt")
USER, PASSWORD = "support@example.org", "correct horse battery staple"


def ensure_venv() -> Path:
    stamp = VENV / ".requirements-goosebit.txt"
    python = VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    if not stamp.exists() or stamp.read_text() != REQUIREMENTS.read_text():
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", REQUIREMENTS], check=True)
        stamp.write_text(REQUIREMENTS.read_text())
    return VENV


@dataclass
class Goosebit:
    url: str
    port: int
    directory: Path
    process: subprocess.Popen

    @classmethod
    @contextlib.contextmanager
    def start(cls, directory: Path, poll_time: str = "00:00:10") -> Iterator[Goosebit]:
        venv = ensure_venv()
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        site = subprocess.run([venv / "bin/python", "-c", "import goosebit, pathlib; "
                               "print(pathlib.Path(goosebit.__file__).parent)"],
                              capture_output=True, text=True, check=True).stdout.strip()
        (directory / "goosebit.yaml").write_text(json.dumps({
            "port": port, "db_uri": f"sqlite:///{directory}/db.sqlite3",
            "artifacts_dir": str(directory / "artifacts"), "poll_time": poll_time,
            "device_auth": {"enable": True, "mode": "strict"},
            "track_device_ip": False}))
        (directory / "pyproject.toml").write_text(
            "[tool.aerich]\ntortoise_orm = \"goosebit.db.config.TORTOISE_CONF\"\n"
            f"location = \"{site}/db/migrations\"\nsrc_folder = \"./.\"\n")
        env = {**os.environ, "GOOSEBIT_SETTINGS": str(directory / "goosebit.yaml")}
        env.pop("PYTHONPATH", None)
        subprocess.run([venv / "bin/aerich", "-c", "pyproject.toml", "upgrade"], cwd=directory,
                       env=env, check=True, capture_output=True)
        log = (directory / "goosebit.log").open("w")
        process = subprocess.Popen([venv / "bin/uvicorn", "goosebit:app", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=directory, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        server = cls(f"http://127.0.0.1:{port}", port, directory, process)
        try:
            server.wait_ready()
            server.setup_user()
            yield server
        finally:
            stop_process(process)
            log.close()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("goosebit exited: " + (self.directory / "goosebit.log")
                                   .read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise RuntimeError("goosebit did not start")

    def setup_user(self) -> None:
        body = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/setup", data=body,
                                                           method="POST"), timeout=30):
            pass


if __name__ == "__main__":
    if sys.argv[1:] == ["ensure-venv"]:
        print(ensure_venv())
    else:
        sys.exit("usage: python3 -m tests.ota.goosebit ensure-venv")
