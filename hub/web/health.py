"""Health and identity routes: /health.json (for OTA health checks and support), /describe,
/version."""

from __future__ import annotations

import json

import bottle

from hub import __version__
from hub.web.api import ctx, plain


def health():
    """200 when MariaDB, Redis, the worker and its broker connection are all fine, else 503."""
    hub = ctx()
    components: dict[str, dict] = {}
    try:
        with hub.db.cursor() as cur:
            cur.execute("SELECT 1")
        components["database"] = {"ok": True}
    except Exception as exc:  # any failure is the answer here
        components["database"] = {"ok": False, "error": str(exc)}
    beat = None
    try:
        hub.redis.ping()
        components["redis"] = {"ok": True}
        # The worker refreshes it every HEARTBEAT_S seconds (hub/names.py).
        beat = hub.redis.get(hub.keys.worker_heartbeat)
    except Exception as exc:
        components["redis"] = {"ok": False, "error": str(exc)}
    if beat is None:
        components["worker"] = {"ok": False, "error": "no heartbeat from `hub worker`"}
        components["broker"] = {"ok": False, "error": "unknown: the worker is not running"}
    else:
        state = json.loads(beat)
        components["worker"] = {"ok": True, "pid": state.get("pid")}
        components["broker"] = {"ok": bool(state.get("mqtt_connected")),
                                **({} if state.get("mqtt_connected")
                                   else {"error": "worker is not connected to the broker"})}
    healthy = all(c["ok"] for c in components.values())
    bottle.response.status = 200 if healthy else 503
    return {"ok": healthy, "version": __version__, "components": components}


def describe():
    bottle.response.set_header("Access-Control-Allow-Origin", "*")
    return plain("emoncms")


def version():
    return plain(__version__)


def register(app: bottle.Bottle) -> None:
    app.route("/health.json", "GET", health)
    app.route("/describe", "GET", describe)
    app.route("/version", "GET", version)
