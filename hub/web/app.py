"""The front controller: the one place the web app is put together.

`create_app(config)` builds a HubContext (config, MariaDB, Redis, models), applies migrations,
installs the request pipeline once on the one Bottle app — body size cap, authentication
(apikey by GET/POST/Bearer, or session cookie), JSON errors — and lets each controller module
register its routes. Nothing else builds the app, so tests can make as many as they like.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from typing import Any

import bottle
from bottle import request, response

from hub.config import Config
from hub.context import HubContext
from hub.db import migrate
from hub.web.api import ANONYMOUS, ApiError, Auth, error_body

log = logging.getLogger(__name__)

# One module per URL area in hub/web/, each exposing register(app).
CONTROLLERS = ("user", "health", "feed", "input", "openapi", "device")

SESSION_COOKIE = "hub_session"
_BEARER = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)


def _apikey_from_request() -> str | None:
    header = request.get_header("Authorization", "")
    match = _BEARER.match(header)
    if match:
        return match.group(1)
    # Query string first: reading request.forms would consume a JSON body.
    key = request.query.getunicode("apikey")
    if key is None and request.content_type.startswith("application/x-www-form-urlencoded"):
        key = request.forms.getunicode("apikey")
    return key


def _resolve_auth(ctx: HubContext) -> Auth:
    key = _apikey_from_request()
    if key is not None:
        found = ctx.users.by_apikey(key)
        if found is None:
            raise ApiError(401, "apikey is not valid")
        user, level = found
        return Auth(user.id, level, is_admin=False, via="apikey")  # keys are never admin
    token = request.get_cookie(SESSION_COOKIE)
    if token:
        user_id = ctx.users.session_user(token)
        if user_id is not None:
            user = ctx.users.get(user_id)
            return Auth(user.id, "admin" if user.is_admin else "session", user.is_admin,
                        via="session")
    return ANONYMOUS


class FrontController:
    """Bottle plugin applied to every route: size cap, auth, and errors as JSON."""

    name = "hub-front-controller"
    api = 2

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def apply(self, callback, route):
        ctx = self.ctx

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                length = request.content_length
                if length > ctx.config.max_body_bytes:
                    raise ApiError(413, f"request body over {ctx.config.max_body_bytes} bytes")
                if length < 0 and "chunked" in request.get_header("Transfer-Encoding", ""):
                    raise ApiError(411, "send a Content-Length; chunked bodies are refused")
                request.environ["hub.auth"] = _resolve_auth(ctx)
                result = callback(*args, **kwargs)
                if isinstance(result, (dict, list)) and not isinstance(result, bottle.BaseResponse):
                    response.content_type = "application/json"
                    return json.dumps(result, allow_nan=False, default=_json_default)
                return result
            except ApiError as exc:
                return error_body(exc.status, exc.message)
            except bottle.HTTPResponse:
                raise
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                return error_body(500, "internal error; the hub log has the details")

        return wrapper


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def create_app(config: Config, ctx: HubContext | None = None) -> bottle.Bottle:
    ctx = ctx or HubContext(config)
    migrate(ctx.db)
    bottle.BaseRequest.MEMFILE_MAX = config.max_body_bytes
    app = bottle.Bottle(catchall=True)
    app.config["hub.ctx"] = ctx
    app.install(FrontController(ctx))

    def not_found(_err: bottle.HTTPError) -> str:
        return error_body(404, f"no such route: {request.method} {request.path}")

    def method_not_allowed(_err: bottle.HTTPError) -> str:
        return error_body(405, f"method {request.method} not allowed on {request.path}")

    app.error_handler.update({404: not_found, 405: method_not_allowed})
    for name in CONTROLLERS:
        importlib.import_module(f"hub.web.{name}").register(app)
    return app
