"""The OTA update agent's two files, as ota/README.md defines them (the contract):

- `status.json` (the agent writes it, 0644): read here and validated field by field. The
  agent runs as root and the hub never trusts it blindly: a missing file means "updates are
  not set up", an unreadable, truncated or malformed one the state "unknown" with the reason;
  a field of the wrong type is dropped and named in `errors`. Nothing here raises on input.
- `request/request.json` (the hub writes it, the agent deletes it): `check_now`,
  `install_now` (consent, for the action id the agent reports as available) or `cancel`,
  written atomically (temporary file, fsync, rename, fsync of the directory).

The request lives in its own directory (`/data/ota/request/`, group-writable by the hub)
because the agent's own directory holds its token and its state, which the hub must neither
read nor replace.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_STATUS_BYTES = 256 * 1024  # the agent's own cap on its state files
MAX_TEXT = 500
MAX_LOG_LINES = 10

# The agent's states (ota/README.md) and the two the hub adds: no status file, or one it
# cannot read.
AGENT_STATES = ("idle", "downloading", "downloaded", "installing", "rebooting",
                "waiting_for_reboot", "trial", "done", "rolled_back", "error", "unconfigured")
STATES = (*AGENT_STATES, "not_set_up", "unknown")
BUSY_STATES = ("downloading", "installing", "rebooting")  # the UI shows a progress bar
RESULTS = ("success", "failure", "cancelled")
MODES = ("forced", "attempt", "skip")
ACTIONS = ("check_now", "install_now", "cancel")
_ACTION_ID = re.compile(r"-?[0-9A-Za-z_-]{1,64}")  # as the agent accepts from the server
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class UpdateRequestError(Exception):
    """The request cannot be made now (the message says why); nothing was written."""


@dataclass(frozen=True)
class Installed:
    slot: str | None
    build_counter: int | None
    version: str | None


@dataclass(frozen=True)
class Available:
    version: str
    action_id: str
    size: int | None
    mode: str | None  # forced | attempt | skip


@dataclass(frozen=True)
class Progress:
    bytes: int
    of: int | None
    percent: int | None  # 0-100; None = indeterminate


@dataclass(frozen=True)
class LastResult:
    result: str  # success | failure | cancelled
    version: str | None
    message: str
    log: list[str]
    at: str | None


@dataclass(frozen=True)
class UpdateStatus:
    state: str  # one of STATES
    installed: Installed | None = None
    available: Available | None = None
    progress: Progress | None = None
    last_result: LastResult | None = None
    last_poll: str | None = None
    server_error: str | None = None
    updated_at: str | None = None
    message: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def set_up(self) -> bool:
        return self.state != "not_set_up"

    @property
    def can_check(self) -> bool:
        return self.state not in ("not_set_up", "unknown", "unconfigured")

    @property
    def awaits_consent(self) -> bool:
        """The agent installed a soft update and waits for "install now" to reboot into it
        (the only moment it reads install_now)."""
        return self.state == "waiting_for_reboot" and self.available is not None

    @property
    def can_cancel(self) -> bool:
        return self.state == "downloading"

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(set_up=self.set_up, can_check=self.can_check,
                   can_install=self.awaits_consent, can_cancel=self.can_cancel)
        return doc


AGENT_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,32}")  # what hawkBit and goosebit accept
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class AgentServer:
    """The update agent's fleet server, validated as the agent validates its file."""

    url: str
    device_id: str
    token: str
    tenant: str = "DEFAULT"
    allow_http: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or len(self.url) > 2048:
            raise UpdateRequestError("the update server must be http(s)://host[:port][/path]")
        if parts.scheme == "http" and not self.allow_http:
            raise UpdateRequestError("plain http sends the token unencrypted: allow it "
                                     "explicitly (--allow-http) or use https")
        for name, value in (("device id", self.device_id), ("tenant", self.tenant)):
            if not AGENT_NAME.fullmatch(value):
                raise UpdateRequestError(f"the {name} must be 1-64 letters, digits, '.', '_' "
                                         "or '-'")
        if not AGENT_TOKEN.fullmatch(self.token):
            raise UpdateRequestError("the token must be 1-32 letters, digits or ._~+/=-")

    def as_json(self) -> dict[str, str]:
        return {"server_url": self.url, "tenant": self.tenant,
                "controller_id": self.device_id, "token": self.token}


class UpdateAgent:
    """Reads the agent's status file and leaves it requests (ota/README.md)."""

    def __init__(self, status_file: Path | None) -> None:
        self.status_file = status_file

    @property
    def request_file(self) -> Path | None:
        if self.status_file is None:
            return None
        return self.status_file.parent / "request" / "request.json"

    # --- status ------------------------------------------------------------------------
    def status(self) -> UpdateStatus:
        if self.status_file is None:
            return UpdateStatus("not_set_up")
        try:
            raw = _read_regular(self.status_file, MAX_STATUS_BYTES)
        except FileNotFoundError:
            return UpdateStatus("not_set_up")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return UpdateStatus("unknown", errors=[f"status file unreadable: {reason}"])
        try:
            doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            reason = "empty" if not raw.strip() else f"not valid JSON ({_text(str(exc), 120)})"
            return UpdateStatus("unknown", errors=[f"status file {reason}"])
        if not isinstance(doc, dict):
            return UpdateStatus("unknown", errors=["status file is not a JSON object"])
        return parse_status(doc)

    # --- requests ----------------------------------------------------------------------
    def check_now(self) -> None:
        current = self.status()
        if not current.can_check:
            raise UpdateRequestError(_why_not(current))
        self._write({"action": "check_now"})

    def install_now(self, action_id: str | None = None) -> Available:
        """Consent to the update the agent reports as available: never a version of the
        caller's choosing. `action_id`, when given, must be that update's (a stale page
        cannot approve a different one)."""
        current = self.status()
        if not current.awaits_consent or current.available is None:
            raise UpdateRequestError(
                _why_not(current) if not current.can_check else
                "no update is waiting to be installed (the agent asks once it has installed "
                f"one into the other slot; state: {current.state})")
        if action_id is not None and action_id != current.available.action_id:
            raise UpdateRequestError(
                f"update {action_id!r} is not the one available "
                f"({current.available.action_id!r}, version {current.available.version})")
        self._write({"action": "install_now", "action_id": current.available.action_id})
        return current.available

    def cancel(self) -> None:
        current = self.status()
        if not current.can_cancel:
            raise UpdateRequestError(f"nothing to stop (state: {current.state})")
        self._write({"action": "cancel"})

    # --- the agent's server (support staff, as root: the file holds the token) -----------
    @property
    def config_file(self) -> Path | None:
        return None if self.status_file is None else self.status_file.parent / "agent.json"

    def configure(self, server: AgentServer) -> Path:
        """Point the agent at its fleet server: `agent.json` (0600), keeping its other keys.
        The agent reads it when it starts. Raises UpdateRequestError naming what is wrong."""
        target = self.config_file
        if target is None:
            raise UpdateRequestError("updates are not set up on this hub (update_status_file)")
        try:
            kept = json.loads(_read_regular(target, MAX_STATUS_BYTES))
        except (OSError, ValueError, UnicodeDecodeError):
            kept = {}
        doc = {**(kept if isinstance(kept, dict) else {}), **server.as_json()}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, json.dumps(doc).encode(), mode=0o600)
        except PermissionError:
            raise UpdateRequestError(f"{target} belongs to the update agent (root): run this "
                                     "as root") from None
        return target

    def _write(self, request: dict[str, str]) -> None:
        target = self.request_file
        if target is None:
            raise UpdateRequestError("updates are not set up on this hub")
        write_atomically(target, json.dumps(request).encode())


def parse_status(doc: dict[str, Any]) -> UpdateStatus:
    """Validate the agent's status object field by field (see the module docstring)."""
    errors: list[str] = []
    state = doc.get("state")
    if state not in AGENT_STATES:
        errors.append(f"unknown state {_text(str(state), 40)!r}")
        state = "unknown"
    installed = _section(doc, "installed", _installed, errors)
    available = _section(doc, "available", _available, errors)
    progress = _section(doc, "progress", _progress, errors)
    last_result = _section(doc, "last_result", _last_result, errors)
    return UpdateStatus(
        state, installed, available, progress if state == "downloading" else None, last_result,
        _timestamp(doc, "last_poll", errors), _optional_text(doc, "server_error", errors),
        _timestamp(doc, "updated_at", errors), _optional_text(doc, "message", errors), errors)


def _section(doc: dict, name: str, parse, errors: list[str]):
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(f"{name}: not an object")
        return None
    try:
        return parse(value)
    except (TypeError, ValueError) as exc:
        errors.append(f"{name}: {exc}")
        return None


def _installed(d: dict) -> Installed:
    slot = _opt_str(d.get("slot"), "slot", 8)
    return Installed(slot, _opt_int(d.get("build_counter"), "build_counter"),
                     _opt_str(d.get("version"), "version", 128))


def _available(d: dict) -> Available:
    version = _opt_str(d.get("version"), "version", 128)
    action_id = d.get("action_id")
    if isinstance(action_id, int) and not isinstance(action_id, bool):
        action_id = str(action_id)
    if not isinstance(action_id, str) or not _ACTION_ID.fullmatch(action_id):
        raise ValueError("action_id missing or malformed")
    size = _opt_int(d.get("size"), "size")
    mode = d.get("mode") if d.get("mode") in MODES else None
    return Available(version or "?", action_id, size, mode)


def _progress(d: dict) -> Progress:
    done = _opt_int(d.get("bytes"), "bytes")
    total = _opt_int(d.get("of"), "of")
    percent = _opt_int(d.get("percent"), "percent")
    if percent is not None and not 0 <= percent <= 100:
        raise ValueError(f"percent {percent} is not 0-100")
    return Progress(done or 0, total, percent)


def _last_result(d: dict) -> LastResult:
    result = d.get("result")
    if result not in RESULTS:
        raise ValueError(f"unknown result {_text(str(result), 40)!r}")
    log = d.get("log") or []
    if not isinstance(log, list):
        raise TypeError("log is not a list")
    lines = [_text(line) for line in log if isinstance(line, str)][-MAX_LOG_LINES:]
    return LastResult(result, _opt_str(d.get("version"), "version", 128),
                      _opt_str(d.get("message"), "message", MAX_TEXT) or "", lines,
                      _opt_str(d.get("at"), "at", 40))


def _opt_str(value: Any, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} is not text")
    return _text(value, limit)


def _opt_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise TypeError(f"{name} is not a whole number")
    return value


def _optional_text(doc: dict, name: str, errors: list[str]) -> str | None:
    try:
        return _opt_str(doc.get(name), name, MAX_TEXT)
    except TypeError as exc:
        errors.append(str(exc))
        return None


def _timestamp(doc: dict, name: str, errors: list[str]) -> str | None:
    text = _optional_text(doc, name, errors)
    if text is None:
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{name} is not an ISO-8601 time")
        return None
    return text


def _text(value: str, limit: int = MAX_TEXT) -> str:
    """One line of printable text, at most `limit` characters."""
    cleaned = _CONTROL.sub(" ", value)
    return cleaned if len(cleaned) <= limit else cleaned[:limit - 1] + "…"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _why_not(current: UpdateStatus) -> str:
    return {"not_set_up": "updates are not set up on this hub",
            "unconfigured": "the update agent has no server configured"
                            + (f" ({current.message})" if current.message else ""),
            "unknown": "the update agent's status cannot be read: "
                       + "; ".join(current.errors)}.get(current.state, current.state)


def _read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a regular file (no FIFO or device that could block us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > limit:
            raise OSError(0, f"larger than {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes, mode: int = 0o644) -> None:
    """A reader sees the old file or the new one, never a part: a temporary file in the
    same directory, fsync, rename over the target, fsync of the directory."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")  # one per writer
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
