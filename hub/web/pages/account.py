"""First run (create the first account, with the setup code when the hub asks for one),
login, logout and change password, as plain HTML forms with a CSRF token."""

from __future__ import annotations

import bottle
from bottle import request

from hub.user import store as users_model
from hub.web import user as user_api
from hub.web.api import ApiError, auth, ctx
from hub.web.pages.shell import (
    logged_in,
    need_login,
    redirect,
    render,
    require_csrf,
)
from hub.web.user import _set_session_cookie


def setup_code_wanted() -> bool:
    """True when this hub has the first-run setup code setting (issue 11's guard); the page
    then asks for it and the register API checks it. Without the setting, no field."""
    return "setup_code" in ctx().config


def first_run_form(error: str | None = None, status: int = 200):
    if ctx().users.count() > 0:
        redirect("/login")
    return render("setup", "setup.title", status, error=error,
                  ask_code=setup_code_wanted())


def first_run_submit():
    require_csrf()
    if ctx().users.count() > 0:
        redirect("/login")
    if request.forms.getunicode("password") != request.forms.getunicode("confirm"):
        return first_run_form("setup.mismatch", 400)
    try:
        result = user_api.register_user()  # the API's own rules (setup code, password policy)
    except ApiError as exc:
        return render("setup", "setup.title", exc.status, error_text=exc.message,
                      error=None, ask_code=setup_code_wanted())
    token = ctx().users.create_session(result["userid"])
    _set_session_cookie(token, ctx().config.session_lifetime)
    redirect("/settings?welcome=1")


def login_form(error: str | None = None, status: int = 200, message: str | None = None):
    if ctx().users.count() == 0:
        redirect("/setup")
    if logged_in():
        redirect("/")
    return render("login", "login.title", status, error=error, error_text=message)


def login_submit():
    require_csrf()
    try:
        user = ctx().users.authenticate(request.forms.getunicode("username") or "",
                                        request.forms.getunicode("password") or "",
                                        request.remote_addr or "")
    except users_model.LoginLocked as exc:
        bottle.response.set_header("Retry-After", str(exc.retry_after))
        return login_form("login.locked", 429)
    except users_model.UserError:
        return login_form("login.failed", 401)
    token = ctx().users.create_session(user.id)
    _set_session_cookie(token, ctx().config.session_lifetime)
    redirect("/")


def logout_submit():
    require_csrf()
    token = request.get_cookie("hub_session")
    if token:
        ctx().users.end_session(token)
    bottle.response.delete_cookie("hub_session", path="/")
    redirect("/login")


def password_form(error: str | None = None, status: int = 200, done: bool = False,
                  message: str | None = None):
    need_login()
    return render("password", "password.title", status, error=error, done=done,
                  error_text=message)


def password_submit():
    need_login()
    require_csrf()
    new = request.forms.getunicode("new") or ""
    if new != request.forms.getunicode("confirm"):
        return password_form("setup.mismatch", 400)
    try:
        ctx().users.change_password(auth().user_id, request.forms.getunicode("old") or "", new,
                                    keep_session=request.get_cookie("hub_session") or "")
    except users_model.LoginFailed:
        return password_form("password.wrong_old", 400)
    except users_model.UserError as exc:
        return password_form(None, 400, message=str(exc))
    return password_form(done=True)


def register(app: bottle.Bottle) -> None:
    app.route("/setup", "GET", first_run_form)
    app.route("/setup", "POST", first_run_submit)
    app.route("/login", "GET", login_form)
    app.route("/login", "POST", login_submit)
    app.route("/logout", "POST", logout_submit)
    app.route("/account/password", "GET", password_form)
    app.route("/account/password", "POST", password_submit)
