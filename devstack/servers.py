"""Real Mosquitto, Redis and MariaDB on loopback for tests, benchmarks and `./build.sh dev`.

Each server gets a free port on 127.0.0.1 and a throwaway data directory, so a server already
running on the default port (or a second test run) never gets in the way. Mosquitto runs with
the dynamic security plugin and anonymous access off, as on the device: `cydynni-admin` may only
administer accounts, `hub` may read and write every topic.

    with Servers.start() as servers:
        print(servers.redis_url, servers.mqtt_port, servers.db_port)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

DYNSEC_PLUGIN_GLOB = "/usr/lib/*/mosquitto_dynamic_security.so"
START_TIMEOUT_S = 60.0


def redis_argv(port: int, data: Path) -> list[str]:
    """Redis as the image runs it (roles/redis): no periodic snapshot, no append-only file,
    but a save into its directory on SIGTERM/SIGINT that the next start loads, so a restart
    loses nothing (on the device the directory is the tmpfs /run/redis); when full it refuses
    writes (noeviction) rather than dropping keys. The limit is higher than the device's 64 MB
    because one test Redis serves every test of a run, each under its own prefix."""
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
            "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--shutdown-on-sigterm", "save", "--shutdown-on-sigint", "save",
            "--maxmemory", "512mb", "--maxmemory-policy", "noeviction", "--daemonize", "no"]



def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class ServerStartError(RuntimeError):
    """A test server did not come up; the message names it and points at its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, name: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"{name} exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerStartError(f"{name} did not listen on 127.0.0.1:{port} in time; see {log}")


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _dynsec_plugin() -> str:
    import glob

    found = glob.glob(DYNSEC_PLUGIN_GLOB)
    if not found:
        raise ServerStartError("mosquitto dynamic security plugin missing: apt install mosquitto")
    return found[0]


@dataclass
class Servers:
    """Running servers and the credentials to reach them."""

    root: Path
    redis_port: int = 0
    mqtt_port: int = 0
    db_port: int = 0
    db_socket: str = ""
    db_user: str = "hub"
    db_password: str = field(default_factory=lambda: secrets.token_hex(12))
    mqtt_user: str = "hub"
    mqtt_password: str = field(default_factory=lambda: secrets.token_hex(12))
    mqtt_admin_user: str = "cydynni-admin"
    mqtt_admin_password: str = field(default_factory=lambda: secrets.token_hex(12))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def start(cls, root: Path | None = None) -> Iterator[Servers]:
        owned = root is None
        root = Path(tempfile.mkdtemp(prefix="cydynni-servers-")) if root is None else root
        servers = cls(root=root)
        try:
            servers.start_redis()
            servers.start_mariadb()
            servers.start_mosquitto()
            yield servers
        finally:
            servers.stop()
            if owned:
                shutil.rmtree(root, ignore_errors=True)

    def _spawn(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc, log

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            stop_process(proc, timeout=20)
        self.procs.clear()

    # -- Redis -------------------------------------------------------------------------------

    def start_redis(self) -> None:
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        self.redis_port = self.redis_port or free_port()
        proc, log = self._spawn("redis", redis_argv(self.redis_port, data))
        _wait_for_port(self.redis_port, "redis-server", proc, log)

    def restart_redis(self, kill: bool = False) -> None:
        """Stop Redis (SIGTERM, as systemctl does; SIGKILL for a crash) and start it again
        on the same port with the same directory."""
        proc = self.procs.pop("redis")
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait(timeout=60)
        for _ in range(50):  # the old socket may linger briefly
            try:
                self.start_redis()
                return
            except ServerStartError:
                time.sleep(0.1)
        raise ServerStartError("redis did not restart")

    # -- MariaDB -----------------------------------------------------------------------------

    def start_mariadb(self) -> None:
        data = self.root / "mysql"
        data.mkdir(exist_ok=True)
        user = _current_user()
        install_log = self.root / "mariadb-install-db.log"
        # A private tmpdir: two runs installing at once must not share temporary tables.
        tmp = self.root / "mysql-tmp"
        tmp.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp)}
        with open(install_log, "wb") as out:
            done = subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={data}", f"--user={user}",
                 "--auth-root-authentication-method=socket", "--skip-test-db",
                 f"--tmpdir={tmp}"],
                stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
        if done.returncode:
            raise ServerStartError(f"mariadb-install-db failed; see {install_log}")
        self.db_port = free_port()
        self.db_socket = str(self.root / "mysqld.sock")
        self._spawn_mariadb()
        root = pymysql.connect(unix_socket=self.db_socket, user="root", autocommit=True)
        with root.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"CREATE USER IF NOT EXISTS '{self.db_user}'@'{host}' "
                            "IDENTIFIED BY %s", (self.db_password,))
                # Tests create a fresh database per test, so the test user may create any.
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.db_user}'@'{host}'")
        root.close()

    def _spawn_mariadb(self) -> None:
        data, tmp, user = self.root / "mysql", self.root / "mysql-tmp", _current_user()
        for _ in range(50):  # after a restart the old socket may linger briefly
            proc, log = self._spawn("mariadb", [
                "mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.db_socket}",
                f"--port={self.db_port}", "--bind-address=127.0.0.1", f"--user={user}",
                f"--pid-file={self.root / 'mysqld.pid'}", "--skip-log-bin", f"--tmpdir={tmp}",
                "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve",
            ])
            try:
                _wait_for_port(self.db_port, "mariadbd", proc, log)
                return
            except ServerStartError:
                if proc.poll() is None:
                    raise
                time.sleep(0.2)
        raise ServerStartError(f"mariadbd did not start; see {self.root / 'mariadb.log'}")

    def restart_mariadb(self) -> None:
        """Stop MariaDB (SIGTERM) and start it again on the same port and data."""
        proc = self.procs.pop("mariadb")
        proc.terminate()
        proc.wait(timeout=60)
        self._spawn_mariadb()

    def _as_root(self, *statements: str) -> None:
        conn = pymysql.connect(unix_socket=self.db_socket, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str) -> None:
        self._as_root(f"DROP DATABASE IF EXISTS `{name}`",
                      f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop_database(self, name: str) -> None:
        self._as_root(f"DROP DATABASE IF EXISTS `{name}`")

    # -- Mosquitto ---------------------------------------------------------------------------

    def start_mosquitto(self) -> None:
        data = self.root / "mosquitto"
        data.mkdir(exist_ok=True)
        dynsec = data / "dynamic-security.json"
        subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(dynsec), self.mqtt_admin_user,
                        self.mqtt_admin_password], check=True, capture_output=True)
        self._add_hub_account(dynsec)
        self.mqtt_port = free_port()
        conf = data / "mosquitto.conf"
        conf.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"plugin {_dynsec_plugin()}\n"
            f"plugin_opt_config_file {dynsec}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            "max_queued_messages 100000\n"
            # Stay the user that started it: the throwaway directory is private to that user.
            f"user {_current_user()}\n"
        )
        proc, log = self._spawn("mosquitto", ["mosquitto", "-c", str(conf)])
        _wait_for_port(self.mqtt_port, "mosquitto", proc, log)

    def _add_hub_account(self, dynsec: Path) -> None:
        """Give `hub` a role that may read and write every topic (written before first start)."""
        salted = _dynsec_password(self.mqtt_password)
        doc = json.loads(dynsec.read_text())
        doc.setdefault("roles", []).append({
            "rolename": "hub",
            "acls": [
                {"acltype": kind, "topic": "#", "priority": 0, "allow": True}
                for kind in ("publishClientSend", "publishClientReceive",
                             "subscribePattern", "unsubscribePattern")
            ],
        })
        doc.setdefault("clients", []).append({
            "username": self.mqtt_user, "roles": [{"rolename": "hub"}], **salted,
        })
        dynsec.write_text(json.dumps(doc, indent=2))

    def restart_mosquitto(self) -> None:
        """Stop and start the broker with the same port and state (for reconnect tests)."""
        proc = self.procs.pop("mosquitto")
        proc.terminate()
        proc.wait(timeout=20)
        conf = self.root / "mosquitto" / "mosquitto.conf"
        for _ in range(50):  # the old socket may linger briefly
            new, log = self._spawn("mosquitto", ["mosquitto", "-c", str(conf)])
            try:
                _wait_for_port(self.mqtt_port, "mosquitto", new, log)
                return
            except ServerStartError:
                time.sleep(0.1)
        raise ServerStartError("mosquitto did not restart")

    def hub_settings(self, data_dir: Path, db_name: str = "hub") -> dict[str, object]:
        """Hub config overrides that point the app at these servers."""
        return {
            "data_dir": str(data_dir),
            # the OTA agent's files (none: "updates not set up" until a test writes them)
            "update_status_file": str(data_dir / "ota" / "status.json"),
            "db_host": "127.0.0.1", "db_port": self.db_port, "db_socket": "",
            "db_user": self.db_user, "db_password": self.db_password, "db_name": db_name,
            "redis_host": "127.0.0.1", "redis_port": self.redis_port, "redis_db": 0,
            "mqtt_host": "127.0.0.1", "mqtt_port": self.mqtt_port,
            "mqtt_user": self.mqtt_user, "mqtt_password": self.mqtt_password,
            "mqtt_admin_user": self.mqtt_admin_user,
            "mqtt_admin_password": self.mqtt_admin_password,
            "session_key": secrets.token_hex(32),
        }


def unit_malloc_env(unit: str = "cydynni-hub-web.service") -> dict[str, str]:
    """glibc's malloc settings (`Environment=MALLOC_…`) that the hub's systemd unit gives
    `hub web` or `hub worker`: tests and benches run them as the device does."""
    path = Path(__file__).resolve().parents[1] / "overlays/rootfs/usr/lib/systemd/system" / unit
    settings = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment=MALLOC_"):
            name, _, value = line.removeprefix("Environment=").partition("=")
            settings[name] = value
    return settings


def hub_env(config: Mapping[str, object]) -> dict[str, str]:
    """Environment for a `python -m hub …` child that uses exactly `config` (no config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_CONFIG"] = "/nonexistent.toml"
    for name, value in config.items():
        env[f"HUB_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def _dynsec_password(password: str, iterations: int = 101) -> dict[str, object]:
    """The salted PBKDF2-SHA512 form the dynamic security plugin stores for a client."""
    import base64
    import hashlib

    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {"password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": iterations}


def main() -> None:
    """Run the servers in the foreground until Ctrl-C, printing how to reach them."""
    with Servers.start() as servers:
        print(json.dumps({"redis_port": servers.redis_port, "mqtt_port": servers.mqtt_port,
                          "db_port": servers.db_port, "root": str(servers.root)}))
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
