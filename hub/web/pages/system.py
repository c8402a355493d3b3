"""S8 Updates (the update agent's status, hub/update/agent.py), S9 Settings (language,
theme, household name, tariff, API keys on request, CSV export)."""

from __future__ import annotations

import json

import bottle
from bottle import request, response

from hub.display.household import InvalidHousehold
from hub.update.agent import UpdateRequestError
from hub.web.api import ApiError, auth, ctx
from hub.web.pages.i18n import LANGUAGES
from hub.web.pages.shell import (
    LANG_COOKIE,
    THEME_COOKIE,
    THEMES,
    YEAR_S,
    need_login,
    render,
    require_csrf,
)

EMPTY_BANDS = 4  # blank band rows offered in the tariff form


def updates_page(requested: str | None = None, error: str | None = None, status: int = 200):
    need_login()
    return render("updates", "updates.title", status, status_=ctx().updates.status(),
                  requested=requested, error=error)


def updates_request():
    """The page's buttons: the same requests and checks as POST /update/*.json."""
    need_login()
    require_csrf()
    if not auth().is_admin:
        raise ApiError(403, "only the hub administrator can start updates")
    action = request.forms.getunicode("action", "")
    updates = ctx().updates
    try:
        if action == "check_now":
            updates.check_now()
        elif action == "install_now":
            updates.install_now(request.forms.getunicode("action_id") or None)
        elif action == "cancel":
            updates.cancel()
        else:
            raise ApiError(400, "unknown update action")
    except UpdateRequestError as exc:
        return updates_page(error=str(exc), status=409)
    except OSError as exc:
        return updates_page(error=f"cannot leave the update agent a request: "
                                  f"{exc.strerror or exc}", status=503)
    return updates_page(requested=action)


def settings_page(error: str | None = None, saved: str | None = None, status: int = 200,
                  keys: bool = False):
    need_login()
    uid = auth().user_id
    household = ctx().households.get(uid)
    feeds = ctx().feeds.feeds(uid)
    power = ctx().households.power_feed(household)
    bands = list(household.tariff.bands) if household.tariff else []
    user = ctx().users.get(uid)
    return render("settings", "settings.title", status, household=household, feeds=feeds,
                  power_feed=power, bands=bands, blank=max(EMPTY_BANDS - len(bands), 1),
                  error=error, saved=saved or (request.query.getunicode("welcome") and "welcome"),
                  show_keys=keys, apikey_read=user.apikey_read if keys else None,
                  apikey_write=user.apikey_write if keys else None)


def settings_save():
    need_login()
    require_csrf()
    f = request.forms
    section = f.getunicode("section", "")
    uid = auth().user_id
    try:
        if section == "display":
            lang, theme = f.getunicode("lang", "en"), f.getunicode("theme", "auto")
            if lang not in LANGUAGES or theme not in THEMES:
                raise InvalidHousehold("language or theme not offered")
            response.set_cookie(LANG_COOKIE, lang, path="/", max_age=YEAR_S, samesite="lax",
                                httponly=True)
            response.set_cookie(THEME_COOKIE, theme, path="/", max_age=YEAR_S, samesite="lax",
                                httponly=True)
            ctx().users.update_profile(uid, language=lang)
            request.cookies[LANG_COOKIE] = lang  # this answer is already in the new language
            request.cookies[THEME_COOKIE] = theme
            ctx().households.set_name(uid, f.getunicode("name", ""))
            feed = f.getunicode("power_feed", "")
            ctx().households.set_power_feed(uid, int(feed) if feed.isdigit() else None)
        elif section == "tariff":
            if f.getunicode("clear"):
                ctx().households.clear_tariff(uid)
            else:
                ctx().households.set_tariff(uid, _tariff_form())
        elif section == "keys":
            return settings_page(keys=True)
        else:
            raise InvalidHousehold("unknown settings section")
    except InvalidHousehold as exc:
        return settings_page(error=str(exc), status=400)
    finally:
        ctx().display.forget(uid)
    return settings_page(saved=section)


def _tariff_form() -> dict:
    f = request.forms
    bands = []
    for i in range(12):
        name = (f.getunicode(f"band{i}_name") or "").strip()
        if not name:
            continue
        bands.append({"name": name, "start": f.getunicode(f"band{i}_start", ""),
                      "end": f.getunicode(f"band{i}_end", ""),
                      "price": f.getunicode(f"band{i}_price", "")})
    return {"bands": bands, "standing": f.getunicode("standing", "0") or "0"}


def export_csv():
    """The power feed's half-hourly averages as CSV (the Settings page links here)."""
    need_login()
    household = ctx().households.get(auth().user_id)
    feed = ctx().households.power_feed(household)
    if feed is None:
        raise ApiError(404, "no power feed yet")
    meta = ctx().feeds.meta(feed.id)
    start, end = meta.get("start_time") or 0, meta.get("end_time") or 0
    response.content_type = "text/csv; charset=utf-8"
    response.set_header("Content-Disposition", f'attachment; filename="power-{feed.id}.csv"')
    if not start:
        return "time,watts\n"
    lines = ctx().feeds.csv(feed.id, start, end, 1800, average=True)
    return "time,watts\n" + "".join(lines)


def register(app: bottle.Bottle) -> None:
    app.route("/system/update", "GET", updates_page)
    app.route("/system/update", "POST", updates_request)
    app.route("/settings", "GET", settings_page)
    app.route("/settings", "POST", settings_save)
    app.route("/settings/export.csv", "GET", export_csv)


__all__ = ["json", "register"]
