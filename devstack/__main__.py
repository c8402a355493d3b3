"""`./build.sh dev`: real Mosquitto, Redis and MariaDB plus `hub web` and `hub worker` on
localhost with a throwaway data directory. Prints the URL and the broker credentials; Ctrl-C
stops everything and deletes the directory (pass --keep to keep it)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.servers import Servers, free_port


def _toml(settings: dict[str, object]) -> str:
    lines = []
    for name, value in settings.items():
        if isinstance(value, bool):
            lines.append(f"{name} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{name} = {value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{name} = "{escaped}"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./build.sh dev", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="web port (default 8080)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cydynni-dev-"))
    port = args.port if _port_is_free(args.port) else free_port()
    procs: list[subprocess.Popen] = []
    try:
        (root / "servers").mkdir()
        with Servers.start(root / "servers") as servers:
            servers.create_database("hub")
            data = root / "data"
            data.mkdir()
            settings = servers.hub_settings(data, "hub")
            settings.update(web_host="127.0.0.1", web_port=port, flush_interval=60)
            config = root / "hub.toml"
            config.write_text(_toml(settings))
            config.chmod(0o600)
            env = {**os.environ, "HUB_CONFIG": str(config)}
            for role in ("web", "worker"):
                log = open(root / f"hub-{role}.log", "ab")  # noqa: SIM115 - lives with the process
                procs.append(subprocess.Popen([sys.executable, "-m", "hub", role], env=env,
                                              stdout=log, stderr=subprocess.STDOUT))
            print(f"[INFO] hub:   http://127.0.0.1:{port}/  (register the first user: admin)")
            print(f"[INFO] mqtt:  127.0.0.1:{servers.mqtt_port} user {servers.mqtt_user} "
                  f"(password in {config})")
            print(f"[INFO] logs:  {root}/hub-web.log, {root}/hub-worker.log")
            print("[INFO] Ctrl-C stops everything")
            signal.signal(signal.SIGTERM, _interrupt)
            try:
                while all(p.poll() is None for p in procs):
                    time.sleep(0.5)
                print("[ERROR] a hub process exited; see the logs above", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 0
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=30)
    finally:
        if args.keep:
            print(f"[INFO] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM stops the stack the same way Ctrl-C does."""
    raise KeyboardInterrupt


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
