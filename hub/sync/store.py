"""SyncStore: the server link's state on /data, in `<data_dir>/sync/` (directory 0700).

- `link.json` (0600): server URL, read API key, allow_http, CA file, local owner; written by
  provisioning after a test call.
- `provision.json` (0600): a provisioning request not yet checked (cydynni.txt at first
  boot, written by the headless config); removed once applied or refused.
- `mapping.json`: rules remote tag/name → local name (DEFAULT_RULES until changed).
- `mirrors.json`: remote feed id → local feed id; these feeds are read-only through the API.
- `status.json`: the last run and each feed's last result, written once per run (SD wear);
  while a run is going its live state and progress are in Redis (`sync:progress`, TTL 60 s)
  and `status()` shows them over the file.
- `run-now`: the API asked for a run; the worker starts one and removes it.
- `run.lock`: flock held by the one running sync (in any process).
- `<feeds>/<id>.dat.sync` + `<id>.sync.json`: a full download in progress (resumed).

Every JSON file is replaced atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from hub.sync.link import InvalidLink, LinkError, LinkSettings, ServerLink, check_url

log = logging.getLogger(__name__)

LOCAL_TAG = "server"  # the tag of every mirrored feed
DEFAULT_RULES: tuple[dict[str, str], ...] = (
    # "*" matches any remote tag; remote names as the CydYnni server calls the feeds.
    {"remote_tag": "*", "remote_name": "hydro", "local_name": "hydro"},
    {"remote_tag": "*", "remote_name": "community", "local_name": "community"},
    {"remote_tag": "*", "remote_name": "use_hh", "local_name": "use_hh"},
)
_RULE_TEXT = re.compile(r"^[\w\s:.*-]{1,64}$")
MAX_RULES = 64
PROGRESS_TTL_S = 60
APIKEY_RE = re.compile(r"^[0-9A-Za-z]{16,64}$")


class SyncBusy(Exception):
    """Another sync run holds the lock."""


class NotProvisioned(Exception):
    """No server link is stored."""


@dataclass(frozen=True)
class Link:
    url: str
    apikey: str
    allow_http: bool = False
    ca_file: str = ""
    user_id: int = 1  # local owner of the mirrored feeds
    provisioned_at: int = 0

    @property
    def settings(self) -> LinkSettings:
        return LinkSettings(self.url, self.allow_http, self.ca_file)

    def public(self) -> dict[str, Any]:
        """Without the key: safe for the API and logs."""
        return {"url": self.url, "allow_http": self.allow_http, "ca_file": self.ca_file,
                "user_id": self.user_id, "provisioned_at": self.provisioned_at}


@dataclass
class ProvisionRequest:
    url: str
    apikey: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    allow_http: bool = False
    ca_file: str = ""
    user_id: int = 1


def write_json(path: Path, doc: Any, mode: int = 0o644, sync: bool = True) -> int:
    """Replace `path` atomically with `doc` (fsync'd unless `sync` is False: then a power
    cut may bring back the previous version, never a torn one); the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return len(data)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        log.error("%s is unreadable (%s); using the default", path, exc)
        return default


def check_rules(rules: Any) -> list[dict[str, str]]:
    """Mapping rules: a list of {remote_tag, remote_name, local_name}; ValueError if not."""
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise ValueError(f"mapping must be a list of at most {MAX_RULES} rules")
    out, names = [], set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) - {"remote_tag", "remote_name",
                                                       "local_name"}:
            raise ValueError(f"rule {i}: must be {{remote_tag, remote_name, local_name}}")
        clean = {"remote_tag": rule.get("remote_tag", "*"),
                 "remote_name": rule.get("remote_name"),
                 "local_name": rule.get("local_name", rule.get("remote_name"))}
        for key, value in clean.items():
            if not isinstance(value, str) or not _RULE_TEXT.match(value):
                raise ValueError(f"rule {i}: {key} must be 1-64 letters, digits, spaces or "
                                 "_ - : . *")
        if "*" in clean["local_name"] or "*" in clean["remote_name"]:
            raise ValueError(f"rule {i}: only remote_tag may be '*'")
        if clean["local_name"] in names:
            raise ValueError(f"rule {i}: local_name {clean['local_name']!r} used twice")
        names.add(clean["local_name"])
        out.append(clean)
    return out


class SyncStore:
    def __init__(self, data_dir: Path, feed_dir: Path, redis_client: redis.Redis | None = None,
                 progress_key: str = "") -> None:
        self.dir = Path(data_dir) / "sync"
        self.feed_dir = Path(feed_dir)
        self.redis = redis_client
        self.progress_key = progress_key
        self.bytes_written = 0  # bytes this store wrote to files (bench: bytes per point)
        self._mirror_cache: tuple[float, dict[int, int]] = (-1.0, {})

    def path(self, name: str) -> Path:
        return self.dir / name

    # -- the link ----------------------------------------------------------------------------

    def link(self) -> Link | None:
        doc = read_json(self.path("link.json"))
        if not isinstance(doc, dict):
            return None
        try:
            return Link(**doc)
        except TypeError:
            log.error("sync/link.json has unexpected fields; treated as not provisioned")
            return None

    def provision(self, request: ProvisionRequest, link_factory=ServerLink) -> Link:
        """Check the request with a test call, then store it (0600). Raises LinkError or
        InvalidLink with a message for the person provisioning; stores nothing then."""
        url = check_url(request.url.strip(), request.allow_http)
        if request.ca_file and not os.path.isfile(request.ca_file):
            raise InvalidLink(f"CA file {request.ca_file} does not exist")
        settings = LinkSettings(url, request.allow_http, request.ca_file)
        apikey = request.apikey.strip()
        if not apikey:
            if not request.username or not request.password:
                raise InvalidLink("give the read API key, or a username and password")
            apikey = link_factory(settings).auth(request.username, request.password)
        if not APIKEY_RE.match(apikey):
            raise InvalidLink("the API key must be 16-64 letters or digits")
        link_factory(settings, apikey).feeds()  # the test call
        link = Link(url, apikey, request.allow_http, request.ca_file, request.user_id,
                    int(time.time()))
        write_json(self.path("link.json"), asdict(link), 0o600)
        self.update_status(provisioned=True, server=url, state="idle",
                           message="provisioned; the first sync starts shortly",
                           failures=0, next_run=0)
        return link

    def unprovision(self) -> None:
        for name in ("link.json", "provision.json"):
            with contextlib.suppress(FileNotFoundError):
                self.path(name).unlink()
        self.update_status(provisioned=False, server="", state="not provisioned",
                           message="no server is set up", next_run=0)

    def pending_request(self) -> ProvisionRequest | None:
        doc = read_json(self.path("provision.json"))
        if doc is None:
            return None
        try:
            return ProvisionRequest(**doc)
        except TypeError:
            log.error("sync/provision.json has unexpected fields; dropped")
            self.drop_pending_request()
            return None

    def drop_pending_request(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path("provision.json").unlink()

    def apply_pending_request(self, link_factory=ServerLink) -> str | None:
        """Try the provisioning request left by the boot-time setup; a refusal drops it
        (the secret goes with it), an unreachable server keeps it for the next try."""
        request = self.pending_request()
        if request is None:
            return None
        try:
            self.provision(request, link_factory)
        except (InvalidLink, LinkError) as exc:
            keep = isinstance(exc, LinkError) and exc.code in (
                "unreachable", "tls", "too_slow", "server_error")
            if not keep:
                self.drop_pending_request()
            verb = "will retry" if keep else "the request was dropped"
            message = f"provisioning from cydynni.txt failed: {exc} ({verb})"
            self.update_status(provisioned=False, state="provisioning failed",
                               message=message, error_code=exc.code if isinstance(
                                   exc, LinkError) else "invalid_settings")
            return message
        self.drop_pending_request()
        return "provisioned from cydynni.txt"

    # -- mapping and mirrors -----------------------------------------------------------------

    def rules(self) -> list[dict[str, str]]:
        doc = read_json(self.path("mapping.json"))
        try:
            return check_rules(doc) if doc is not None else [dict(r) for r in DEFAULT_RULES]
        except ValueError as exc:
            log.error("sync/mapping.json: %s; using the defaults", exc)
            return [dict(r) for r in DEFAULT_RULES]

    def set_rules(self, rules: Any) -> list[dict[str, str]]:
        checked = check_rules(rules)
        write_json(self.path("mapping.json"), checked)
        return checked

    def mirrors(self) -> dict[int, int]:
        """remote feed id → local feed id."""
        path = self.path("mirrors.json")
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime != self._mirror_cache[0]:
            doc = read_json(path, {})
            self._mirror_cache = (mtime, {int(k): int(v) for k, v in doc.items()})
        return dict(self._mirror_cache[1])

    def set_mirror(self, remote_id: int, local_id: int) -> None:
        mirrors = self.mirrors()
        mirrors[remote_id] = local_id
        self.bytes_written += write_json(self.path("mirrors.json"),
                                         {str(k): v for k, v in mirrors.items()})

    def is_mirrored(self, local_id: int) -> bool:
        return local_id in self.mirrors().values()

    # -- status and run requests -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        doc = read_json(self.path("status.json"), {})
        live = self.progress()
        if live:
            doc.update(live)
        link = self.link()
        doc.setdefault("feeds", [])
        doc["provisioned"] = link is not None
        doc["server"] = link.url if link else ""
        if link is None and self.pending_request() is None and not doc.get("state"):
            doc["state"], doc["message"] = "not provisioned", "no server is set up"
        elif link is None and self.pending_request() is not None and not doc.get("state"):
            doc["state"] = "provisioning pending"
            doc["message"] = "server settings from cydynni.txt are waiting to be checked"
        doc["run_requested"] = self.path("run-now").exists()
        return doc

    def update_status(self, **fields: Any) -> dict[str, Any]:
        doc = read_json(self.path("status.json"), {})
        doc.update(fields)
        self.bytes_written += write_json(self.path("status.json"), doc)
        return doc

    def set_progress(self, **fields: Any) -> None:
        """Live state of a running sync (Redis, not the SD card); expires if the run dies."""
        if self.redis is None:
            return
        try:
            self.redis.set(self.progress_key, json.dumps(fields), ex=PROGRESS_TTL_S)
        except redis.RedisError as exc:  # progress is decoration: never fail a run on it
            log.warning("cannot publish sync progress: %s", exc)

    def clear_progress(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(self.progress_key)

    def progress(self) -> dict[str, Any] | None:
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(self.progress_key)
        except redis.RedisError:
            return None
        return json.loads(raw) if raw else None

    def has_partial(self) -> bool:
        """A full download was interrupted (by a stop, a kill or a power cut)."""
        return any(self.feed_dir.glob("*.sync.json"))

    def request_run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path("run-now").touch()

    def take_run_request(self) -> bool:
        try:
            self.path("run-now").unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time across processes; the kernel frees it if the holder dies."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path("run.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncBusy("a sync run is already in progress") from None
            yield
        finally:
            os.close(fd)

    def copy_ca(self, pem: str) -> str:
        """Store a private CA (PEM text from the API) next to the link; its path."""
        if "-----BEGIN CERTIFICATE-----" not in pem or len(pem) > 64 * 1024:
            raise InvalidLink("the CA must be PEM text with a certificate")
        path = self.path("server-ca.pem")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False) as f:
            f.write(pem)
        shutil.move(f.name, path)
        return str(path)
