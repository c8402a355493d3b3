"""Server sync routes (`sync/<action>.json`): status for the Settings page, provisioning,
the feed mapping and "sync now". The runs themselves happen in the worker (hub/worker/sync.py);
this side only reads their status and leaves requests for it. The API key is never shown.
"""

from __future__ import annotations

import bottle

from hub.sync.link import InvalidLink, LinkError
from hub.sync.store import ProvisionRequest
from hub.web.api import ApiError, auth, ctx, json_body, ok, param, param_json, requires


@requires("read")
def status():
    """Link (without its key), state, last run and per-feed progress and last result."""
    store = ctx().sync
    doc = store.status()
    link = store.link()
    doc["link"] = link.public() if link else None
    doc["mapping"] = store.rules()
    return doc


def _flag(name: str) -> bool:
    text = param(name, "0").strip().lower()
    if text not in ("0", "1", "true", "false", ""):
        raise ApiError(400, f"parameter '{name}' must be 0 or 1")
    return text in ("1", "true")


@requires("admin")
def provision():
    """Check the server and account with a test call, then store them (0600 on /data)."""
    store = ctx().sync
    ca_pem = param("ca_pem", "")
    try:
        ca_file = store.copy_ca(ca_pem) if ca_pem else ""
        request = ProvisionRequest(url=param("url", ctx().config.server_url),
                                   apikey=param("server_apikey", ""),
                                   username=param("username", ""),
                                   password=param("password", ""),
                                   allow_http=_flag("allow_http"), ca_file=ca_file,
                                   user_id=auth().user_id or 1)
        link = store.provision(request)
    except InvalidLink as exc:
        raise ApiError(400, str(exc)) from None
    except LinkError as exc:
        raise ApiError(502, f"the server check failed ({exc.code}): {exc}") from None
    store.request_run()
    return ok(link=link.public())


@requires("admin")
def unprovision():
    ctx().sync.unprovision()
    return ok(message="server link removed; mirrored feeds are kept")


@requires("session")
def run_now():
    store = ctx().sync
    if store.link() is None and store.pending_request() is None:
        raise ApiError(409, "no server is set up: provision first")
    store.request_run()
    return ok(message="a sync run will start within a few seconds")


@requires("read")
def get_mapping():
    return ctx().sync.rules()


@requires("admin")
def set_mapping():
    """Replace the rules: a JSON body (or `mapping` parameter) listing
    {remote_tag, remote_name, local_name}."""
    rules = json_body() if param("mapping", None) is None else param_json("mapping")
    try:
        return ok(mapping=ctx().sync.set_rules(rules))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def register(app: bottle.Bottle) -> None:
    app.route("/sync/status.json", "GET", status)
    app.route("/sync/provision.json", "POST", provision)
    app.route("/sync/unprovision.json", "POST", unprovision)
    app.route("/sync/run.json", "POST", run_now)
    app.route("/sync/mapping.json", "GET", get_mapping)
    app.route("/sync/mapping.json", "POST", set_mapping)
