"""hawkBit Direct Device Integration (DDI) client, the subset goosebit and hawkBit share:
poll the base resource, configData, deploymentBase + feedback, cancelAction + feedback.

Answers are hostile input: bounded in size, parsed as JSON, validated into the few fields
we use. Links must stay on the configured server (same scheme, host and port), so the
token is never sent anywhere else.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ota.agent.config import AgentConfig
from ota.errors import ServerError

DURATION = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})")
HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "sha1": re.compile(r"[0-9a-f]{40}")}


class AuthError(ServerError):
    """401/403: the token is wrong or missing. Retrying will not help until it changes."""


class NotFound(ServerError):
    """404 on a resource we were sent to: the deployment is gone; give up, do not retry forever."""


@dataclass(frozen=True)
class Artifact:
    filename: str
    size: int
    hashes: dict[str, str]
    url: str


@dataclass(frozen=True)
class Deployment:
    action_id: str
    download: str  # forced | attempt | skip
    update: str  # forced | attempt | skip
    maintenance_window: str | None  # available | unavailable | None
    version: str
    artifact: Artifact
    feedback_url: str


@dataclass(frozen=True)
class Poll:
    sleep_seconds: float | None
    deployment_url: str | None
    cancel_url: str | None
    config_data_url: str | None


def parse_duration(text: object) -> float | None:
    match = DURATION.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    hours, minutes, seconds = (int(g) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


class DdiClient:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.origin = urlsplit(cfg.server_url)

    # --- transport -------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.cfg.token}", "Accept": "application/json"}

    def check_link(self, url: object) -> str:
        if not isinstance(url, str) or len(url) > 4096:
            raise ServerError("link missing or too long")
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) != (
                self.origin.scheme, self.origin.hostname, self.origin.port):
            raise ServerError(f"link leaves the configured server: {parts.scheme}://"
                              f"{parts.hostname}:{parts.port}")
        return url

    def request(self, method: str, url: str, body: dict | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        headers = self.headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        limit = self.cfg.limits.max_json_bytes
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.limits.read_timeout) as resp:
                raw = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise AuthError(f"server refused the token ({exc.code}): check the device "
                                "token in the update settings") from exc
            if exc.code == 404:
                raise NotFound(f"{method} {urlsplit(url).path}: 404") from exc
            raise ServerError(f"{method} {urlsplit(url).path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ServerError(f"{method} {urlsplit(url).path}: {exc}") from exc
        if len(raw) > limit:
            raise ServerError(f"answer larger than {limit} bytes: refused")
        if not raw.strip():
            return None
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ServerError("answer is not JSON") from exc
        if not isinstance(parsed, dict):
            raise ServerError("answer is not a JSON object")
        return parsed

    # --- resources -------------------------------------------------------------------
    def poll(self) -> Poll:
        answer = self.request("GET", self.cfg.base_url) or {}
        config = answer.get("config")
        polling = config.get("polling") if isinstance(config, dict) else None
        links = answer.get("_links") or {}
        if not isinstance(links, dict):
            raise ServerError("_links is not an object")

        def link(name: str) -> str | None:
            entry = links.get(name)
            return self.check_link(entry.get("href")) if isinstance(entry, dict) else None

        return Poll(parse_duration(polling.get("sleep") if isinstance(polling, dict) else None),
                    link("deploymentBase"), link("cancelAction"), link("configData"))

    def send_config_data(self, url: str, data: dict[str, str]) -> None:
        self.request("PUT", url, {"mode": "merge", "data": data})

    def deployment(self, url: str) -> Deployment:
        answer = self.request("GET", url)
        if not answer:
            raise NotFound("deployment is empty")
        return self.parse_deployment(answer, url)

    def parse_deployment(self, answer: dict, url: str) -> Deployment:
        """Validate a deploymentBase answer; ServerError for anything we cannot use."""
        if not isinstance(answer, dict):
            raise ServerError("deployment is not an object")
        action_id = str(answer.get("id", ""))
        if not re.fullmatch(r"-?[0-9A-Za-z_-]{1,64}", action_id):
            raise ServerError("deployment id missing or malformed")
        deployment = answer.get("deployment")
        if not isinstance(deployment, dict):
            raise ServerError("deployment missing")
        chunks = deployment.get("chunks")
        if not isinstance(chunks, list) or len(chunks) != 1 or not isinstance(chunks[0], dict):
            raise ServerError("a deployment must have exactly one chunk (one bundle)")
        chunk = chunks[0]
        artifacts = chunk.get("artifacts")
        if not isinstance(artifacts, list) or len(artifacts) != 1 or not isinstance(
                artifacts[0], dict):
            raise ServerError("the chunk must have exactly one artifact (the .raucb bundle)")
        art = artifacts[0]
        size = art.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ServerError("artifact size missing or not a positive integer")
        if size > self.cfg.limits.max_bundle_bytes:
            raise ServerError(f"artifact of {size} bytes exceeds the cap of "
                              f"{self.cfg.limits.max_bundle_bytes}")
        hashes = {}
        given = art.get("hashes")
        given = given if isinstance(given, dict) else {}
        for name, pattern in HEX.items():
            value = given.get(name)
            if isinstance(value, str) and pattern.fullmatch(value.lower()):
                hashes[name] = value.lower()
        if not hashes:
            raise ServerError("artifact has no sha256 or sha1 hash")
        links = art.get("_links")
        links = links if isinstance(links, dict) else {}
        entry = links.get("download") or links.get("download-http")
        url_ = self.check_link(entry.get("href") if isinstance(entry, dict) else None)
        filename = str(art.get("filename", "bundle.raucb"))[:128]
        modes = {}
        for key in ("download", "update"):
            mode = deployment.get(key, "forced")
            modes[key] = mode if isinstance(mode, str) and mode in (
                "forced", "attempt", "skip") else "forced"
        window = deployment.get("maintenanceWindow")
        window = window if isinstance(window, str) and window in (
            "available", "unavailable") else None
        return Deployment(action_id, modes["download"], modes["update"], window,
                          str(chunk.get("version", ""))[:128],
                          Artifact(filename, size, hashes, url_),
                          url.rstrip("/") + "/feedback")

    def feedback(self, url: str, action_id: str, execution: str, finished: str,
                 details: list[str], progress: tuple[int, int] | None = None) -> None:
        result: dict = {"finished": finished}
        if progress is not None:
            result["progress"] = {"cnt": progress[0], "of": progress[1]}
        self.request("POST", url, {"id": action_id, "status": {
            "execution": execution, "result": result,
            "details": [d[:1000] for d in details][:20]}})

    def cancel(self, url: str) -> str:
        answer = self.request("GET", url) or {}
        cancel = answer.get("cancelAction")
        stop = cancel.get("stopId") if isinstance(cancel, dict) else answer.get("id")
        return str(stop)[:64]
