"""What every page shares: language, theme, CSRF, security headers, the signed-in user, and
`render()` (Bottle SimpleTemplate: `{{x}}` is HTML-escaped, so a device that calls itself
`<img src=x onerror=alert(1)>` shows as text).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import bottle
from bottle import request, response

from hub.web.api import ApiError, auth, ctx
from hub.web.pages import fmt
from hub.web.pages.i18n import LANGUAGES, catalogue

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = [str(WEB_DIR / "templates")]
STATIC_DIR = WEB_DIR / "static"
LANG_COOKIE, THEME_COOKIE, CSRF_COOKIE = "hub_lang", "hub_theme", "hub_csrf"
THEMES = ("auto", "light", "dark")
YEAR_S = 365 * 86400
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
_PROCESS_SECRET = secrets.token_bytes(32)

# The bottom tab bar (4 tabs + more), then the "more" menu.
TABS = (("/", "nav.now"), ("/forecast", "nav.best"), ("/use", "nav.use"),
        ("/devices", "nav.devices"))
MORE = (("/community", "nav.community"), ("/settings", "nav.settings"),
        ("/system/update", "nav.updates"), ("/kiosk", "nav.kiosk"))
ADMIN = (("/admin/users", "nav.users"), ("/admin/inputs", "nav.inputs"),
         ("/admin/feeds", "nav.feeds"))


def security_headers() -> None:
    response.set_header("Content-Security-Policy", CSP)
    response.set_header("X-Content-Type-Options", "nosniff")
    response.set_header("Referrer-Policy", "same-origin")
    response.set_header("X-Frame-Options", "DENY")


def language(user=None) -> str:
    """?lang= (and remember it), else the cookie, else the user's profile, else the browser."""
    asked = request.query.getunicode("lang")
    if asked in LANGUAGES:
        response.set_cookie(LANG_COOKIE, asked, path="/", max_age=YEAR_S, samesite="lax",
                            httponly=True)
        return asked
    cookie = request.get_cookie(LANG_COOKIE)
    if cookie in LANGUAGES:
        return cookie
    if auth().user_id is not None:
        user = user or ctx().users.get(auth().user_id)
        profile = user.public().get("language")
        if profile in LANGUAGES:
            return profile
    accept = request.get_header("Accept-Language", "").lower()
    return "cy" if accept.startswith("cy") else "en"


def theme() -> str:
    value = request.get_cookie(THEME_COOKIE)
    return value if value in THEMES else "auto"


def _secret() -> bytes:
    return ctx().config.session_key.encode() or _PROCESS_SECRET


def csrf_token() -> str:
    """Bound to the session cookie, or before login to a random `hub_csrf` cookie."""
    seed = request.get_cookie("hub_session") or request.get_cookie(CSRF_COOKIE)
    if not seed:
        seed = secrets.token_hex(16)
        response.set_cookie(CSRF_COOKIE, seed, path="/", httponly=True, samesite="strict")
        request.environ["hub.csrf_seed"] = seed
    return hmac.new(_secret(), seed.encode(), hashlib.sha256).hexdigest()[:40]


def check_csrf() -> bool:
    sent = request.get_header("X-CSRF-Token") or request.forms.getunicode("csrf") or ""
    seed = request.get_cookie("hub_session") or request.get_cookie(CSRF_COOKIE)
    if not seed:
        return False
    wanted = hmac.new(_secret(), seed.encode(), hashlib.sha256).hexdigest()[:40]
    return hmac.compare_digest(sent, wanted)


class CsrfFailed(Exception):
    pass


def require_csrf() -> None:
    if not check_csrf():
        raise CsrfFailed


def tz() -> ZoneInfo:
    return ZoneInfo(ctx().config.timezone)


def render(template: str, title: str, status: int = 200, **data: Any) -> str:
    current = auth()
    user = ctx().users.get(current.user_id) if current.user_id is not None else None
    lang = language(user)
    cat = catalogue(lang)
    security_headers()
    response.set_header("Cache-Control", "no-store")
    response.content_type = "text/html; charset=utf-8"
    response.status = status
    values = {
        "_": cat.text, "n_": cat.ntext, "lang": lang, "theme": theme(), "fmt": fmt, "tz": tz(),
        "title": cat.text(title), "csrf": csrf_token(), "user": user,
        "is_admin": current.is_admin, "path": request.path, "tabs": TABS, "more": MORE,
        "admin_links": ADMIN if current.is_admin else (),
        "js_messages": json.dumps({"lang": lang, "messages": cat.js()}, ensure_ascii=False)
        .replace("</", "<\\/"),
        "kiosk": False,
        "household_name": ctx().households.get(user.id).name if user else "",
    } | data
    return bottle.template(template, template_lookup=TEMPLATES, **values)


def redirect(location: str) -> None:
    security_headers()
    bottle.redirect(location, 303)


def logged_in() -> bool:
    return auth().via == "session"


def session_only(handler):
    """For the pages' own JSON reads (live values, pairing): a browser session, never an
    API key; they only read, so GET with the cookie is right."""
    @functools.wraps(handler)
    def guarded(*args, **kwargs):
        current = auth()
        if current.level == "anonymous":
            raise ApiError(401, "log in first")
        if current.via != "session":
            raise ApiError(403, "this is for the hub's pages: log in (API keys use the API)")
        return handler(*args, **kwargs)

    return guarded


def need_login() -> None:
    """Pages are for signed-in people; first run goes to account creation."""
    if logged_in():
        return
    if ctx().users.count() == 0:
        redirect("/setup")
    redirect("/login")


def static(path: str):
    security_headers()
    answer = bottle.static_file(path, root=str(STATIC_DIR))
    if isinstance(answer, bottle.HTTPResponse) and answer.status_code == 200:
        answer.set_header("Cache-Control", "public, max-age=3600")
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        answer.set_header(name, response.headers.get(name, ""))
    return answer
