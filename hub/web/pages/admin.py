"""Admin pages, emoncms-style but plain: users; inputs and their process lists; feeds (list,
graph, CSV export, delete with confirmation). Enough to set up logging without the API."""

from __future__ import annotations

import json
import time

import bottle
from bottle import request, response

from hub.feed.store import FeedError
from hub.input import process as proc
from hub.user import store as users_model
from hub.web import user as user_api
from hub.web.api import ApiError, auth, ctx
from hub.web.pages.shell import need_login, redirect, render, require_csrf

RANGES = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}


def _admin() -> None:
    need_login()
    if not auth().is_admin:
        raise ApiError(403, "this page is for the hub administrator")


def users_page(message: str | None = None, error: str | None = None, status: int = 200):
    _admin()
    return render("admin_users", "users.title", status, users=ctx().users.list(),
                  message=message, error=error)


def users_add():
    _admin()
    require_csrf()
    try:
        user_api.register_user()
    except ApiError as exc:
        return users_page(error=exc.message, status=exc.status)
    return users_page(message=request.forms.getunicode("username"))


def users_reset():
    _admin()
    require_csrf()
    try:
        token = ctx().users.issue_reset_token(int(request.forms.getunicode("userid", "0")))
    except (users_model.UserError, ValueError) as exc:
        return users_page(error=str(exc), status=400)
    return users_page(message=f"reset token: {token}")


def _steps_text(steps: list[dict]) -> list[str]:
    out = []
    for step in steps:
        try:
            name = proc.lookup(step.get("fn")).name
        except proc.ProcessError:
            name = str(step.get("fn"))
        args = ",".join(str(a) for a in step.get("args", []))
        out.append(f"{name}({args})" if args else name)
    return out


def inputs_page(error: str | None = None, status: int = 200):
    _admin()
    uid = auth().user_id
    inputs = ctx().inputs.list(uid)
    for row in inputs:
        row["steps"] = _steps_text(row["processList"] or [])
    return render("admin_inputs", "inputs.title", status, inputs=inputs,
                  processes=proc.PROCESSES, feeds=ctx().feeds.feeds(uid), error=error)


def inputs_process():
    """Add one step (creating the feed when asked) or clear the list."""
    _admin()
    require_csrf()
    uid = auth().user_id
    f = request.forms
    try:
        input_id = int(f.getunicode("input", "0"))
        current = next((i for i in ctx().inputs.list(uid) if i["id"] == input_id), None)
        if current is None:
            raise ValueError(f"no input {input_id}")
        if f.getunicode("clear"):
            ctx().inputs.set_processlist(uid, input_id, [])
            redirect("/admin/inputs")
        step = proc.lookup(f.getunicode("fn", ""))
        arg = (f.getunicode("arg") or "").strip()
        new_feed = (f.getunicode("new_feed") or "").strip()
        if new_feed:
            arg = str(ctx().feeds.create(uid, new_feed, current["nodeid"], 10).id)
        steps = list(current["processList"] or [])
        steps.append({"fn": step.name, "args": [arg] if arg else []})
        ctx().inputs.set_processlist(uid, input_id, steps)
    except (proc.ProcessError, FeedError, ValueError) as exc:
        return inputs_page(error=str(exc), status=400)
    redirect("/admin/inputs")


def feeds_page():
    _admin()
    rows = ctx().feeds.list(auth().user_id)
    return render("admin_feeds", "feeds.title", feeds=rows)


def _feed(feed_id: int):
    try:
        return ctx().feeds.get_owned(feed_id, auth().user_id)
    except FeedError:
        raise ApiError(404, f"no feed {feed_id}") from None


def feed_graph(feed_id: int):
    _admin()
    feed = _feed(feed_id)
    span = request.query.getunicode("range", "day")
    if span not in RANGES:
        span = "day"
    end = int(time.time())
    start = end - RANGES[span]
    step = max(feed.interval, RANGES[span] // 720)
    try:
        rows = ctx().feeds.data(feed.id, start, end, step, average=True)
    except FeedError as exc:
        raise ApiError(400, str(exc)) from None
    data = json.dumps({"t": [t for t, _ in rows], "w": [v for _, v in rows]},
                      allow_nan=False).replace("</", "<\\/")
    known = [v for _, v in rows if v is not None]
    return render("admin_feed", "feeds.graph", feed=feed, span=span, ranges=RANGES,
                  data=data, rows=rows[-48:], count=len(known),
                  low=min(known) if known else None, high=max(known) if known else None)


def feed_csv(feed_id: int):
    _admin()
    feed = _feed(feed_id)
    meta = ctx().feeds.meta(feed.id)
    response.content_type = "text/csv; charset=utf-8"
    response.set_header("Content-Disposition", f'attachment; filename="feed-{feed.id}.csv"')
    if not meta.get("start_time"):
        return ""
    return "".join(ctx().feeds.csv(feed.id, meta["start_time"], meta["end_time"],
                                   feed.interval))


def feed_delete_confirm(feed_id: int):
    _admin()
    return render("admin_feed_delete", "feeds.delete", feed=_feed(feed_id))


def feed_delete(feed_id: int):
    _admin()
    require_csrf()
    feed = _feed(feed_id)
    if request.forms.getunicode("confirm_name") != feed.name:
        return render("admin_feed_delete", "feeds.delete", 400, feed=feed, error=True)
    ctx().feeds.delete(feed.id)
    redirect("/admin/feeds")


def register(app: bottle.Bottle) -> None:
    app.route("/admin/users", "GET", users_page)
    app.route("/admin/users", "POST", users_add)
    app.route("/admin/users/reset", "POST", users_reset)
    app.route("/admin/inputs", "GET", inputs_page)
    app.route("/admin/inputs", "POST", inputs_process)
    app.route("/admin/feeds", "GET", feeds_page)
    app.route("/admin/feeds/<feed_id:int>", "GET", feed_graph)
    app.route("/admin/feeds/<feed_id:int>.csv", "GET", feed_csv)
    app.route("/admin/feeds/<feed_id:int>/delete", "GET", feed_delete_confirm)
    app.route("/admin/feeds/<feed_id:int>/delete", "POST", feed_delete)
