"""Hub configuration: one declared table of settings, one TOML file, environment overrides.

Precedence (lowest first): the defaults below → the TOML file (`HUB_CONFIG`, default
`/data/hub/hub.toml`, written at first boot with the per-device secrets) → environment variables
`HUB_<NAME>` → overrides passed by the caller (tests). Every setting is documented here and only
here; `tests/hub/test_docs.py` checks the README table against this one.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = "/data/hub/hub.toml"


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong type."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def kind(self) -> type:
        return type(self.default)


SETTINGS: tuple[Setting, ...] = (
    # Storage
    Setting("data_dir", "/data/hub", "Directory for hub state; feeds live in <data_dir>/feeds."),
    Setting("flush_interval", 300, "Seconds between feed buffer flushes to disk (SD wear)."),
    Setting("timezone", "Europe/London", "Household timezone for calendar reads and schedules."),
    # MariaDB
    Setting("db_socket", "/run/mysqld/mysqld.sock", "MariaDB unix socket; empty to use TCP."),
    Setting("db_host", "localhost", "MariaDB host when db_socket is empty."),
    Setting("db_port", 3306, "MariaDB TCP port when db_socket is empty."),
    Setting("db_user", "hub", "MariaDB user."),
    Setting("db_password", "", "MariaDB password (generated per device at first boot)."),
    Setting("db_name", "hub", "MariaDB database."),
    # Redis
    Setting("redis_host", "127.0.0.1", "Redis host (live values, feed buffer, sessions)."),
    Setting("redis_port", 6379, "Redis port."),
    Setting("redis_db", 0, "Redis database number."),
    Setting("redis_prefix", "hub:", "Prefix of every Redis key the hub writes."),
    # MQTT
    Setting("mqtt_host", "127.0.0.1", "Mosquitto host."),
    Setting("mqtt_port", 1883, "Mosquitto port."),
    Setting("mqtt_user", "hub", "Broker account of the hub (reads and writes every topic)."),
    Setting("mqtt_password", "", "Password of mqtt_user (generated per device)."),
    Setting("mqtt_admin_user", "cydynni-admin", "Broker account that manages device accounts."),
    Setting("mqtt_admin_password", "", "Password of mqtt_admin_user (generated per device)."),
    Setting("mqtt_base_topic", "emon", "Topic root for meter and device readings."),
    Setting("mqtt_user_id", 1, "Hub user that owns inputs arriving over MQTT."),
    Setting("mqtt_client_id", "cydynni-hub-worker", "Fixed MQTT client id of `hub worker` "
            "(its persistent session keeps QoS 1 readings while it is away)."),
    Setting("max_nodes_per_user", 32, "Distinct input nodes a user may have (emoncms: 32)."),
    # Web
    # bandit B104: the hub serves the household LAN (devices, phones).
    Setting("web_host", "0.0.0.0", "Address the web server listens on."),  # nosec B104
    Setting("web_port", 8080, "Port the web server listens on (80 on the device)."),
    Setting("web_threads", 8, "Worker threads of the WSGI server."),
    Setting("session_key", "", "Secret for session tokens (generated per device)."),
    Setting("session_lifetime", 30 * 24 * 3600, "Seconds a login session stays valid."),
    Setting("max_body_bytes", 1_000_000, "Largest HTTP request body accepted."),
    Setting("login_attempts", 5, "Failed logins from one address before that address is "
            "locked out."),
    Setting("login_account_attempts", 20, "Failed logins to one account, from any addresses, "
            "before the account is locked out."),
    Setting("login_lockout", 300, "Seconds the first lockout lasts; each further lockout "
            "within a day doubles it, up to login_lockout_max."),
    Setting("login_lockout_max", 86400, "Longest lockout, in seconds."),
    Setting("trusted_proxies", "", "Comma-separated addresses or networks of reverse proxies "
            "whose X-Forwarded-For is believed; empty: the TCP peer is the client."),
    Setting("setup_code", "", "First-run claim code: creating the first account over HTTP "
            "needs it (generated per device at first boot, or the code on the box's label "
            "given in cydynni.txt); empty: only `hub admin create-user` can."),
    Setting("csv_max_points", 200_000, "Most rows one feed/csvexport.json request may ask "
            "for (the answer is built in memory)."),
    # Devices
    Setting("broadcast_enabled", False, "Announce the hub by UDP broadcast on port 5005."),
    Setting("mdns_enabled", False, "Announce cydynni.local and services over mDNS."),
    Setting("pairing_window", 60, "Seconds a device has to fetch its credentials after Allow."),
    # Server sync and updates
    Setting("server_url", "", "Community server offered by `hub admin provision` when no "
            "--url is given (the provisioned link lives in <data_dir>/sync/link.json)."),
    Setting("sync_interval", 3600, "Seconds between server sync runs."),
    Setting("sync_start_delay", 60, "Seconds after the worker starts before its first "
            "automatic sync run (provisioning, a resumed download, a run due while off); "
            "a run asked for through the API starts at once."),
    Setting("sync_max_bytes", 64 * 1024 * 1024, "Most bytes one sync run downloads (the rest "
            "follows in the next run)."),
    Setting("sync_connect_timeout", 10, "Seconds to connect to the server."),
    Setting("sync_read_timeout", 30, "Seconds the server may stay silent during a request."),
    Setting("sync_min_bytes_per_s", 2048, "Slowest transfer accepted, averaged over "
            "sync_window seconds; slower is cut off."),
    Setting("sync_window", 20, "Seconds over which the minimum throughput is measured."),
    Setting("sync_retry_min", 300, "Seconds before retrying after a failed sync (doubles "
            "per failure)."),
    Setting("sync_retry_max", 21600, "Longest wait between retries after failures."),
    # In-home display
    Setting("update_status_file", "/data/ota/status.json",
            "The OTA agent's status file (ota/README.md); requests go to request/request.json "
            "beside it. Absent file = updates not set up."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    kind = setting.kind
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(text)
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            pass
        else:
            if kind is str:
                return value
    raise ConfigError(f"{source}: {setting.name} must be {kind.__name__}, got {value!r}")


class Config(Mapping[str, Any]):
    """Read-only settings, available as attributes and as a mapping."""

    def __init__(self, values: dict[str, Any], source: str | None = None) -> None:
        self._values = values
        self.source = source

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def feed_dir(self) -> Path:
        return Path(self.data_dir) / "feeds"

    def public(self) -> dict[str, Any]:
        """Settings without secrets, safe to log or show."""
        return {k: ("***" if _is_secret(k) and v else v) for k, v in self._values.items()}


def _is_secret(name: str) -> bool:
    return name.endswith(("password", "_key", "_code"))


def config_path(path: str | os.PathLike | None = None,
                environ: Mapping[str, str] | None = None) -> Path:
    """The TOML file to read: `path`, else $HUB_CONFIG (if set and not empty), else the
    device's DEFAULT_CONFIG_PATH."""
    environ = os.environ if environ is None else environ
    return Path(path or environ.get("HUB_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike | None = None,
                overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    values = {s.name: s.default for s in SETTINGS}
    path = config_path(path, environ)
    source = None
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for name, value in doc.items():
            if name not in _BY_NAME:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            values[name] = _coerce(_BY_NAME[name], value, str(path))
        source = str(path)
    for name, setting in _BY_NAME.items():
        env_name = f"HUB_{name.upper()}"
        if env_name in environ:
            values[name] = _coerce(setting, environ[env_name], env_name)
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise ConfigError(f"override: unknown setting {name!r}")
        values[name] = _coerce(_BY_NAME[name], value, "override")
    return Config(values, source)
