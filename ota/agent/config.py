"""Agent configuration: /data/ota/agent.json (0600: it holds the device token).

    {"server_url": "http://fleet.example:60053", "tenant": "DEFAULT",
     "controller_id": "cydynni-0123456789ab", "token": "..."}

Everything in the file is hostile input and validated; a bad file stops the agent with
a message naming the key (never the token's value).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ota.errors import OtaError

MAX_CONFIG_BYTES = 16 * 1024
TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,32}")  # hawkBit and goosebit: <= 32 characters
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ConfigError(OtaError):
    """The agent configuration is missing or invalid."""


@dataclass
class Limits:
    max_bundle_bytes: int = 1536 * 1024 * 1024  # a root slot (build.conf ROOT_SIZE_MIB)
    connect_timeout: float = 15.0
    read_timeout: float = 30.0
    min_rate_bytes: int = 4096  # per second, averaged over rate_window
    rate_window: float = 60.0
    deadline: float = 6 * 3600.0
    attempts: int = 8  # per download, each resumes where the last stopped
    free_space_margin: int = 64 * 1024 * 1024
    max_json_bytes: int = 256 * 1024


@dataclass
class AgentConfig:
    server_url: str
    tenant: str
    controller_id: str
    token: str
    state_dir: Path = Path("/data/ota")
    poll_seconds: float = 300.0
    min_poll_seconds: float = 10.0
    max_poll_seconds: float = 24 * 3600.0
    keyring: Path = Path("/etc/rauc/keyring.pem")
    system_conf: Path = Path("/etc/rauc/system.conf")
    hub_health_url: str = "http://127.0.0.1:80/health.json"
    health_units: tuple[str, ...] = ("mosquitto.service", "mariadb.service",
                                     "redis-server.service", "cydynni-hub-database.service",
                                     "cydynni-hub-web.service", "cydynni-hub-worker.service")
    health_tcp: tuple[tuple[str, int], ...] = (("127.0.0.1", 1883), ("127.0.0.1", 6379))
    health_deadline: float = 480.0
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    rauc_command: tuple[str, ...] = ("rauc",)
    limits: Limits = field(default_factory=Limits)

    @property
    def base_url(self) -> str:
        return f"{self.server_url.rstrip('/')}/{self.tenant}/controller/v1/{self.controller_id}"


def validate(raw: dict) -> dict:
    out: dict = {}
    url = raw.get("server_url")
    if not isinstance(url, str) or len(url) > 2048:
        raise ConfigError("server_url missing or too long")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("server_url must be http(s)://host[:port][/path]")
    out["server_url"] = url
    for key, default in (("tenant", "DEFAULT"), ("controller_id", None)):
        value = raw.get(key, default)
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise ConfigError(f"{key} must be 1-64 letters, digits, '.', '_' or '-'")
        out[key] = value
    token = raw.get("token")
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise ConfigError("token missing or not 1-32 token characters")
    out["token"] = token
    for key, low, high in (("poll_seconds", 1, 86400), ("health_deadline", 30, 3600)):
        if key in raw:
            seconds = raw[key]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
                    low <= seconds <= high):
                raise ConfigError(f"{key} must be {low}..{high} seconds")
            out[key] = float(seconds)
    return out


def load(path: Path, **overrides) -> AgentConfig:
    try:
        stat = path.stat()
        if stat.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
        if stat.st_mode & 0o077:
            os.chmod(path, 0o600)  # it holds the token
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: no update server configured") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable JSON object: {type(exc).__name__}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return AgentConfig(**validate(raw), **overrides)
