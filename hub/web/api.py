"""What every controller needs from the front controller: the context, auth and JSON errors.

Controllers import from here only. A controller module exposes `register(app)` which adds its
routes to the one Bottle app (so hooks and plugins installed once apply everywhere), reads
parameters with the `param_*` helpers (which answer 400 with a message naming the parameter)
and guards routes with `@requires(...)`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bottle
from bottle import request, response

# Access levels, weakest first. A write key can do everything a read key can; a session can do
# everything a write key can and also change account settings; admin is a session of an admin.
LEVELS = ("anonymous", "read", "write", "session", "admin")


class ApiError(Exception):
    """Answered as JSON `{"success": false, "message": ...}` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Auth:
    user_id: int | None
    level: str  # one of LEVELS
    is_admin: bool = False
    via: str = "none"  # "apikey", "session" or "none"

    def allows(self, needed: str) -> bool:
        return LEVELS.index(self.level) >= LEVELS.index(needed)


ANONYMOUS = Auth(None, "anonymous")


def ctx():
    """The HubContext of the running app (config, db, redis, models)."""
    return request.app.config["hub.ctx"]


def auth() -> Auth:
    return request.environ.get("hub.auth", ANONYMOUS)


def requires(level: str) -> Callable:
    """Route decorator: 401 when not logged in / no key, 403 when the key is not enough."""
    if level not in LEVELS:
        raise ValueError(level)

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            current = auth()
            if current.level == "anonymous" and level != "anonymous":
                raise ApiError(401, "authentication required: log in or pass an apikey")
            if not current.allows(level):
                need = {"read": "a read or write apikey", "write": "the write apikey",
                        "session": "a logged-in session (apikeys cannot change account "
                                   "settings)", "admin": "an administrator session"}[level]
                raise ApiError(403, f"this needs {need}")
            return handler(*args, **kwargs)

        guarded.required_level = level  # read by the OpenAPI test
        return guarded

    return decorate


# -- parameters ----------------------------------------------------------------------------

_MISSING = object()


def param(name: str, default: Any = _MISSING) -> str:
    """A GET/POST form parameter as text; 400 if missing and no default."""
    value = request.params.getunicode(name)
    if value is None:
        if default is _MISSING:
            raise ApiError(400, f"missing parameter '{name}'")
        return default
    return value


def param_int(name: str, default: Any = _MISSING, minimum: int | None = None,
              maximum: int | None = None) -> int:
    text = param(name, default)
    if text is default and default is not _MISSING:
        return default
    try:
        value = int(float(text)) if "." in str(text) else int(text)
    except (TypeError, ValueError):
        raise ApiError(400, f"parameter '{name}' must be an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, f"parameter '{name}' must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"parameter '{name}' must be at most {maximum}, got {value}")
    return value


def param_float(name: str, default: Any = _MISSING) -> float:
    text = param(name, default)
    if text is default and default is not _MISSING:
        return default
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ApiError(400, f"parameter '{name}' must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"parameter '{name}' must be a finite number")
    return value


def param_json(name: str, default: Any = _MISSING) -> Any:
    text = param(name, default)
    if text is default and default is not _MISSING:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"parameter '{name}' is not valid JSON: {exc}") from None


def json_body() -> Any:
    """The request body parsed as JSON (size already capped by the front controller)."""
    raw = request.body.read()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None


def ok(**fields: Any) -> dict[str, Any]:
    return {"success": True, **fields}


def plain(text: str) -> str:
    """A text/plain answer (emoncms answers `ok` to input/post)."""
    response.content_type = "text/plain; charset=utf-8"
    return text


def error_body(status: int, message: str) -> str:
    response.status = status
    response.content_type = "application/json"
    return json.dumps({"success": False, "message": message})


__all__ = [
    "ApiError",
    "Auth",
    "auth",
    "bottle",
    "ctx",
    "error_body",
    "json_body",
    "ok",
    "param",
    "param_float",
    "param_int",
    "param_json",
    "plain",
    "requires",
]
