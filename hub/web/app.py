"""The front controller: the one place the web app is put together.

`create_app(config)` builds a HubContext (config, MariaDB, Redis, models), applies migrations,
installs the request pipeline once on the one Bottle app — body checks, authentication
(apikey by GET/POST/Bearer, or session cookie), JSON errors — and lets each controller module
register its routes. Nothing else builds the app, so tests can make as many as they like.

What every response gets, whoever produced it (a route, Bottle's router, Bottle's own 500):
- errors as JSON `{"success": false, "message": ...}` (`HubApp.default_error_handler`);
- security headers (`SECURITY_HEADERS`, plus a deny-all CSP on JSON answers), added only where
  the route did not set its own, so HTML pages keep the CSP the UI gives them.

Body rules, checked before any route runs: at most `max_body_bytes`; no chunked bodies (411,
or 400 with a Content-Length too, the request-smuggling shape); the body is read here, so a
body shorter than its Content-Length answers 400 (client closed) or 408 (client stalled past
the server's socket timeout), and a malformed form or multipart body answers 400; no parameter
or JSON body nests deeper than `api.MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import socket
from typing import Any

import bottle
from bottle import request, response

from hub.config import Config
from hub.context import HubContext
from hub.db import migrate
from hub.web.api import (
    ANONYMOUS,
    MAX_JSON_DEPTH,
    ApiError,
    Auth,
    error_body,
    json_depth,
    session_cookie,
)

log = logging.getLogger(__name__)

# One module per URL area in hub/web/, each exposing register(app).
CONTROLLERS = ("user", "health", "feed", "input", "openapi", "device", "sync", "update",
               "pages")

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
# JSON, CSV and text answers are never rendered as pages: nothing may load or frame them.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
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
    token = session_cookie()
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
                _check_body(ctx.config.max_body_bytes)
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


def _check_body(max_bytes: int) -> None:
    """Refuse what the routes must never see; read the body now so its faults answer here."""
    encoding = request.get_header("Transfer-Encoding", "").lower()
    declared = request.get_header("Content-Length")
    if encoding:
        _close_after()
        if declared is not None:
            raise ApiError(400, "a request may not have both Content-Length and "
                                "Transfer-Encoding")
        raise ApiError(411, "send a Content-Length; chunked bodies are refused")
    try:
        length = request.content_length
    except ValueError:
        _close_after()
        raise ApiError(400, "Content-Length must be a whole number of bytes") from None
    if length > max_bytes:
        _close_after()
        raise ApiError(413, f"request body over {max_bytes} bytes")
    if length > 0:
        stream = request.environ.get("wsgi.input")
        try:
            body = request.body.read()
        except (TimeoutError, socket.timeout):  # noqa: UP041 (same class, named for readers)
            _give_up_body(stream)
            raise ApiError(408, f"the body stopped before its {length} bytes arrived") from None
        except OSError:
            _give_up_body(stream)
            raise ApiError(400, "the body could not be read") from None
        if len(body) < length:
            _give_up_body(stream)
            raise ApiError(400, f"the body has {len(body)} bytes, its Content-Length says "
                                f"{length}")
        kind = request.content_type.split(";")[0].strip().lower()
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                request.POST  # noqa: B018 (parse now: errors become a 400 here)
            except (ValueError, bottle.HTTPError, bottle.MultipartError) as exc:
                message = getattr(exc, "body", None) or str(exc)
                raise ApiError(400, f"malformed {kind} body: {message}") from None
        elif kind.endswith("json") and json_depth(body) > MAX_JSON_DEPTH:
            raise ApiError(400, f"the JSON body nests more than {MAX_JSON_DEPTH} levels deep")
    for name, value in request.params.allitems():
        if isinstance(value, str) and ("[" in value or "{" in value) \
                and json_depth(value) > MAX_JSON_DEPTH:
            raise ApiError(400, f"parameter '{name}' nests more than {MAX_JSON_DEPTH} levels "
                                "deep")


def _give_up_body(stream: Any) -> None:
    """After a short or stalled body: answer now instead of waiting for the rest. cheroot
    drains a known-length body it thinks is unread before it answers (a second socket
    timeout, then no answer at all), so tell its reader nothing remains; the connection is
    closed after the answer."""
    if hasattr(stream, "remaining"):
        stream.remaining = 0
    _close_after()


def _close_after() -> None:
    """The rest of the connection's bytes can't be trusted: close it after this answer."""
    response.set_header("Connection", "close")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class HubApp(bottle.Bottle):
    """The Bottle app with the hub's error shape and security headers on every response."""

    def default_error_handler(self, res: bottle.HTTPError) -> str:
        """Bottle's own errors (router, body parsing, its catch-all 500) as JSON, not HTML."""
        if res.status_code >= 500:
            if res.exception is not None:
                log.error("unhandled error on %s %s: %s", request.method, request.path,
                          res.traceback or res.exception)
            message = "internal error; the hub log has the details"
        else:
            message = res.body if isinstance(res.body, str) and res.body else res.status_line
        return error_body(res.status_code, message)

    def wsgi(self, environ: dict, start_response: Any) -> Any:
        def with_headers(status: str, headers: list, exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n.lower() not in present]
            content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
            if "content-security-policy" not in present and "html" not in content_type:
                extra.append(("Content-Security-Policy", DATA_CSP))
            return start_response(status, [*headers, *extra], exc_info)

        return super().wsgi(environ, with_headers)


def create_app(config: Config, ctx: HubContext | None = None) -> bottle.Bottle:
    """The app, on a migrated database."""
    ctx = ctx or HubContext(config)
    migrate(ctx.db)
    return build_app(config, ctx)


def build_app(config: Config, ctx: HubContext) -> bottle.Bottle:
    """The app with every route, without touching MariaDB: `hub web` builds it (seconds of
    imports under QEMU) while the server is still starting, then migrates."""
    bottle.BaseRequest.MEMFILE_MAX = config.max_body_bytes
    app = HubApp(catchall=True)
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
