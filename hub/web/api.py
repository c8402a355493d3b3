"""What every controller needs from the front controller: the context, auth and JSON errors.

Controllers import from here only. A controller module exposes `register(app)` which adds its
routes to the one Bottle app (so hooks and plugins installed once apply everywhere), reads
parameters with the `param_*` helpers (which answer 400 with a message naming the parameter)
and guards routes with `@requires(...)`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
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


def requires(level: str, writes: bool | None = None) -> Callable:
    """Route decorator: 401 when not logged in / no key, 403 when the key is not enough.

    A route that `writes` (by default every route that needs the write key, a session or
    admin) refuses GET requests authenticated only by the session cookie with 403: SameSite=Lax
    cookies ride along on top-level cross-site links, so a link on any web site could otherwise
    delete a household's inputs. Apikey GETs stay allowed (emoncms tools post by GET); a
    session writes by POST. Session routes that only read pass `writes=False`.
    """
    if level not in LEVELS:
        raise ValueError(level)
    if writes is None:
        writes = level in ("write", "session", "admin")

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            current = auth()
            if current.level == "anonymous" and level != "anonymous":
                raise ApiError(401, "authentication required: log in or pass an apikey")
            if writes and current.via == "session" and request.method in ("GET", "HEAD"):
                raise ApiError(403, "with a session cookie, send writes by POST (GET writes "
                                    "need an apikey)")
            if not current.allows(level):
                need = {"read": "a read or write apikey", "write": "the write apikey",
                        "session": "a logged-in session (apikeys cannot change account "
                                   "settings)", "admin": "an administrator session"}[level]
                raise ApiError(403, f"this needs {need}")
            return handler(*args, **kwargs)

        guarded.required_level = level  # read by the OpenAPI test
        guarded.writes = writes
        return guarded

    return decorate


# -- parameters ----------------------------------------------------------------------------

_MISSING = object()

# Integers a parameter may hold: JSON's exact range. Larger ones are refused with 400 instead
# of overflowing a float, a MariaDB column or numpy later.
MAX_INT = 2**53
# Times (`start`, `end`, `time`): unix seconds or milliseconds, from 1970 to about 2286 in
# milliseconds; anything else is refused before a calendar or array computation overflows.
MAX_TIME = 1e13
# JSON nesting: deeper documents are refused before the parser recurses (none of the hub's
# documents nests more than 4 levels).
MAX_JSON_DEPTH = 32


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
    value = _integer(text)
    if value is None:
        raise ApiError(400, f"parameter '{name}' must be an integer from {-MAX_INT} to "
                            f"{MAX_INT}, got {_shown(text)}")
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


def param_time(name: str, default: Any = _MISSING) -> float:
    """Unix seconds (or milliseconds), 0 to MAX_TIME: bounded so date arithmetic can't fail."""
    value = param_float(name, default)
    if value is default and default is not _MISSING:
        return default
    if not 0 <= value <= MAX_TIME:
        raise ApiError(400, f"parameter '{name}' must be unix seconds or milliseconds from 0 "
                            f"to {MAX_TIME:.0e}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(text: Any) -> int | None:
    """An integer from "12", "12.0" or "1e3"; None for text, fractions, inf or overflow."""
    try:
        text = str(text).strip()
        if re.fullmatch(r"[+-]?\d{1,20}", text):
            value = int(text)
        else:
            number = float(text)
            if not math.isfinite(number) or number != int(number):
                return None
            value = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if -MAX_INT <= value <= MAX_INT else None


# -- JSON: one bounded parser for every JSON document the web side reads --------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str | bytes) -> int:
    """How deep `text` nests arrays and objects (brackets inside strings do not count)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    deepest = depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"integer {text[:20]}... is too large")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def loads(text: str | bytes, what: str) -> Any:
    """Parse JSON with bounds: at most MAX_JSON_DEPTH deep, no NaN/Infinity, no number that
    overflows a float, integers of at most 20 digits. Anything else is a 400 naming `what`."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(400, f"{what} nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {str(exc)[:120]}") from None


def param_json(name: str, default: Any = _MISSING) -> Any:
    text = param(name, default)
    if text is default and default is not _MISSING:
        return default
    return loads(text, f"parameter '{name}'")


def json_body() -> Any:
    """The request body parsed as JSON (size already capped by the front controller)."""
    raw = request.body.read()
    return loads(raw or b"null", "body")


# -- the session cookie -----------------------------------------------------------------------

SESSION_COOKIE = "hub_session"


def session_cookie() -> str | None:
    """The hub_session cookie's value, read leniently: Bottle parses the whole Cookie header
    with http.cookies, which raises on any malformed cookie of any name (a 500 the API fuzz
    test found); a browser's other cookies are none of our business."""
    for part in request.get_header("Cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == SESSION_COOKIE:
            return value.strip().strip('"') or None
    return None


# -- the client's address --------------------------------------------------------------------

def client_address() -> str:
    """The TCP peer; X-Forwarded-For only when the peer is a configured `trusted_proxies`
    address (then the right-most hop that is not itself a trusted proxy)."""
    peer = request.environ.get("REMOTE_ADDR", "")
    trusted = trusted_proxies(ctx().config.trusted_proxies)
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.get_header("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _in(hop, trusted):
            return hop
    return peer


@functools.lru_cache(maxsize=8)
def trusted_proxies(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in setting.split(",") if part.strip())


def _in(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


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
    "client_address",
    "ctx",
    "error_body",
    "json_body",
    "loads",
    "ok",
    "param",
    "param_float",
    "param_int",
    "param_json",
    "param_time",
    "plain",
    "requires",
    "session_cookie",
]
