"""`./build.sh dev`: real Mosquitto, Redis and MariaDB plus `hub web` and `hub worker` on
localhost with a throwaway data directory. Prints the URL, the broker credentials, the config
file and where every log is; a hub process that exits is restarted with backoff and its log
path and last lines are printed (devstack/supervise.py). Ctrl-C stops everything and deletes
the directory (pass --keep to keep it)."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from devstack.servers import Servers, free_port
from devstack.supervise import Child, Supervisor


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
    try:
        (root / "servers").mkdir()
        with Servers.start(root / "servers") as servers:
            servers.create_database("hub")
            data = root / "data"
            data.mkdir()
            settings = servers.hub_settings(data, "hub")
            setup_code = secrets.token_hex(4)  # as first boot makes one per device
            settings.update(web_host="127.0.0.1", web_port=port, flush_interval=60,
                            setup_code=setup_code)
            config = root / "hub.toml"
            config.write_text(_toml(settings))
            config.chmod(0o600)
            env = {**os.environ, "HUB_CONFIG": str(config)}
            supervisor = Supervisor([
                Child(f"hub {role}", [sys.executable, "-m", "hub", role], root / f"hub-{role}.log",
                      env) for role in ("web", "worker")])
            supervisor.say = lambda line: print(line, flush=True)
            supervisor.start()
            print(f"[INFO] hub:   http://127.0.0.1:{port}/  (register the first user: admin)")
            print(f"[INFO] setup code for the first account: {setup_code}")
            print(f"[INFO] mqtt:  127.0.0.1:{servers.mqtt_port} user {servers.mqtt_user} "
                  f"(password in {config})")
            print(f"[INFO] config: HUB_CONFIG={config} (for `hub admin …` against this stack)")
            print(f"[INFO] logs:  {root}/hub-web.log, {root}/hub-worker.log; servers: "
                  f"{servers.root}/{{redis,mariadb,mosquitto}}.log")
            print("[INFO] Ctrl-C stops everything", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            try:
                while True:
                    supervisor.check()
                    time.sleep(0.2)
            except KeyboardInterrupt:
                return 0
            finally:
                supervisor.stop()
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
