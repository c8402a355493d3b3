"""The household screens: S1 Now (`/`), the live endpoint, S2 Best times, S3 My use,
S4 Community, S11 Kiosk. Numbers come from `hub.display` (DisplayService); these handlers
only pick the user and the period and hand the results to the templates."""

from __future__ import annotations

import json
import time
from datetime import date, datetime

import bottle
from bottle import request, response

from hub.display.periods import KINDS, today
from hub.display.screens import etag
from hub.web.api import ApiError, auth, ctx
from hub.web.pages import fmt
from hub.web.pages.shell import language, need_login, render, security_headers, session_only, tz


def _user() -> int:
    return auth().user_id


def now_page():
    need_login()
    view = ctx().display.now_view(_user())
    return render("now", "now.title", view=view, history_json=_history_json(view.history))


def _history_json(history) -> str:
    return json.dumps({"t": [t for t, _ in history], "w": [v for _, v in history]},
                      allow_nan=False).replace("</", "<\\/")


@session_only
def live():
    """GET /api/live: the one small object pages poll; 304 when unchanged (ETag)."""
    payload = ctx().display.live(_user())
    tag = etag(payload)
    security_headers()
    response.set_header("ETag", tag)
    response.set_header("Cache-Control", "no-cache")
    if request.get_header("If-None-Match") == tag:
        return bottle.HTTPResponse(status=304, headers={"ETag": tag})
    return payload | {"now": int(time.time())}


@session_only
def pairing_requests():
    """GET /api/pairing: pending pairing requests, polled fast so the pop-up shows in 2 s."""
    payload = {"pairing": ctx().display.pairing_requests()}
    tag = etag(payload)
    security_headers()
    response.set_header("ETag", tag)
    response.set_header("Cache-Control", "no-cache")
    if request.get_header("If-None-Match") == tag:
        return bottle.HTTPResponse(status=304, headers={"ETag": tag})
    return payload | {"now": int(time.time())}


def best_page():
    need_login()
    view = ctx().display.best_view(_user())
    zone = tz()
    bars = fmt.bars([s.score for s in view.slots],
                    [fmt.hhmm(s.start, zone) for s in view.slots],
                    ["–" if s.score is None else f"{s.score:.0f}" for s in view.slots],
                    [f"bar-{s.light}" + (" bar-best" if any(w.start <= s.start < w.end
                                                             for w in view.windows) else "")
                     for s in view.slots], width=480, height=120)
    return render("best", "best.title", view=view, bars=bars,
                  card=ctx().display.card(time.time()))


def use_page():
    need_login()
    kind = request.query.getunicode("period", "day")
    if kind not in KINDS:
        raise ApiError(400, f"period must be one of {', '.join(KINDS)}")
    day_text = request.query.getunicode("day")
    zone = tz()
    try:
        day = date.fromisoformat(day_text) if day_text else today(zone, time.time())
    except ValueError:
        raise ApiError(400, "day must be YYYY-MM-DD") from None
    if not date(2000, 1, 1) <= day <= date(2100, 1, 1):
        raise ApiError(400, "day must be between 2000 and 2100")
    view = ctx().display.use_view(_user(), kind, day)
    lang = language()
    labels = [fmt.hhmm(t, zone) if kind == "day" else fmt.day_label(t, zone, lang)
              for t, _ in view.bars]
    bars = fmt.bars([v for _, v in view.bars], labels,
                    [fmt.kwh(v) for _, v in view.bars], ["bar-use"] * len(view.bars),
                    width=480, height=120)
    days = [None if kind == "day" else datetime.fromtimestamp(t, zone).date().isoformat()
            for t, _ in view.bars]  # week/month rows open that day's half-hours
    return render("use", "use.title", view=view, bars=bars, kind=kind, days=days,
                  prev=view.period.step(-1).first.isoformat(),
                  next=view.period.step(1).first.isoformat())


def community_page():
    need_login()
    view = ctx().display.community_view(_user())
    zone = tz()
    comm = fmt.bars([c for _, c, _ in view.day], [fmt.hhmm(t, zone) for t, _, _ in view.day],
                    [fmt.kw(c) for _, c, _ in view.day], ["bar-community"] * len(view.day),
                    width=480, height=120)
    hydro = fmt.bars([h for _, _, h in view.day], [fmt.hhmm(t, zone) for t, _, _ in view.day],
                     [fmt.kw(h) for _, _, h in view.day], ["bar-hydro"] * len(view.day),
                     width=480, height=120)
    return render("community", "community.title", view=view, comm=comm, hydro=hydro)


def kiosk_page():
    need_login()
    view = ctx().display.now_view(_user())
    best = ctx().display.best_view(_user())
    return render("kiosk", "kiosk.title", view=view, best=best, kiosk=True,
                  history_json=_history_json(view.history))


def register(app: bottle.Bottle) -> None:
    app.route("/", "GET", now_page)
    app.route("/api/live", "GET", live)
    app.route("/api/pairing", "GET", pairing_requests)
    app.route("/forecast", "GET", best_page)
    app.route("/use", "GET", use_page)
    app.route("/community", "GET", community_page)
    app.route("/kiosk", "GET", kiosk_page)
