"""Health check of a trial boot: every listed unit active, the broker and Redis answering on
their ports, and the hub's /health.json saying 200 with every component ok (MariaDB,
Redis, the worker and its broker connection). Retried until a deadline: services take a
while after boot. Returns the reasons it is not healthy (empty list = healthy).

A unit systemd reports "failed" has been given up on (no Restart=, or its start limit hit):
it will not come up by itself, so the verdict is given at once instead of at the deadline.
A unit in a restart loop is "activating" and gets until the deadline."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ota.agent.config import AgentConfig


def unit_problems(units: tuple[str, ...]) -> list[str]:
    if not units:
        return []
    try:
        done = subprocess.run(["systemctl", "is-active", *units], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"systemctl: {exc}"]
    states = done.stdout.split()
    return [f"{unit} is {state}" for unit, state in zip(units, states, strict=False)
            if state != "active"] or ([] if len(states) == len(units) else ["systemctl failed"])


def tcp_problems(endpoints: tuple[tuple[str, int], ...]) -> list[str]:
    problems = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as exc:
            problems.append(f"nothing answers on {host}:{port} ({exc.strerror or exc})")
    return problems


def hub_problems(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read(64 * 1024)
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(64 * 1024), exc.code
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return [f"hub web does not answer: {exc}"]
    try:
        data = json.loads(body)
    except ValueError:
        return [f"hub /health.json: HTTP {status}, not JSON"]
    components = data.get("components") if isinstance(data, dict) else None
    bad = [f"hub {name}: {c.get('error', 'not ok')}" for name, c in (components or {}).items()
           if isinstance(c, dict) and not c.get("ok")]
    if status != 200 or bad or not data.get("ok"):
        return bad or [f"hub /health.json: HTTP {status}"]
    return []


def problems(cfg: AgentConfig) -> list[str]:
    return (unit_problems(cfg.health_units) + tcp_problems(cfg.health_tcp)
            + hub_problems(cfg.hub_health_url))


def given_up(found: list[str]) -> bool:
    return any(problem.endswith(" is failed") for problem in found)


def wait_healthy(cfg: AgentConfig, *, sleep: Callable[[float], None] = time.sleep,
                 interval: float = 5.0,
                 check: Callable[[AgentConfig], list[str]] = problems) -> list[str]:
    """Empty list once healthy; the last problems if the deadline passes first or a unit
    has failed for good."""
    deadline = time.monotonic() + cfg.health_deadline
    while True:
        found = check(cfg)
        if not found or given_up(found) or time.monotonic() >= deadline:
            return found
        sleep(interval)
