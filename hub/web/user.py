"""User routes (emoncms-compatible): register, login, auth, keys, passwords, profile."""

from __future__ import annotations

import hmac

import bottle
from bottle import request, response

from hub.user import store as model
from hub.web.api import (
    ApiError,
    auth,
    client_address,
    ctx,
    ok,
    param,
    param_int,
    requires,
    session_cookie,
)

_STATUS = {model.InvalidUsername: 400, model.InvalidEmail: 400, model.WeakPassword: 400,
           model.UsernameTaken: 409, model.UserNotFound: 404, model.LoginFailed: 401,
           model.LoginLocked: 429, model.InvalidResetToken: 400}


def _fail(exc: model.UserError) -> ApiError:
    if isinstance(exc, model.LoginLocked):
        response.set_header("Retry-After", str(exc.retry_after))
    return ApiError(_STATUS.get(type(exc), 400), str(exc))


def _set_session_cookie(token: str, max_age: int | None) -> None:
    secure = request.urlparts.scheme == "https"
    response.set_cookie("hub_session", token, path="/", httponly=True, samesite="lax",
                        secure=secure, max_age=max_age)


def register_user():
    """Create an account. Later accounts need an admin session. The first account (it becomes
    admin) needs the hub's setup code — shown on its console, written to the boot partition
    (cydynni-setup-code.txt) at first boot, or the code on the box's label given in
    cydynni.txt — so a neighbour on the same Wi-Fi cannot claim a new hub. Without a setup
    code configured only the console (`hub admin create-user`) can create it."""
    users = ctx().users
    if users.count() > 0:
        if not auth().is_admin:
            raise ApiError(403, "registration is closed: ask the hub administrator to add you")
    else:
        _check_setup_code()
    try:
        user = users.register(param("username"), param("password"), param("email", ""))
    except model.UserError as exc:
        raise _fail(exc) from None
    return ok(userid=user.id, apikey_read=user.apikey_read, apikey_write=user.apikey_write,
              admin=user.is_admin)


def _check_setup_code() -> None:
    expected = ctx().config.setup_code
    if not expected:
        raise ApiError(403, "this hub has no setup code: create the first account on its "
                            "console with `hub admin create-user`")
    given = param("setup_code", "")
    if not given:
        raise ApiError(403, "the first account needs the hub's setup code (on the hub's "
                            "console, in cydynni-setup-code.txt on its SD card, or on the "
                            "box's label): send it as 'setup_code'")
    # Codes are shown grouped (ABCD-EFGH); accept them with or without the dashes and spaces.
    if not hmac.compare_digest(_normalise(given).encode(), _normalise(expected).encode()):
        raise ApiError(403, "the setup code is not right")


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def _authenticate() -> model.User:
    """The user named by the `username`/`password` parameters (rate-limited per address and
    per account; the address is the TCP peer unless it is a trusted proxy)."""
    try:
        return ctx().users.authenticate(param("username"), param("password"),
                                        client_address())
    except model.UserError as exc:
        raise _fail(exc) from None


def login():
    """Check the password, start a session cookie."""
    user = _authenticate()
    token = ctx().users.create_session(user.id)
    _set_session_cookie(token, ctx().config.session_lifetime)
    return ok(message="logged in", userid=user.id, admin=user.is_admin)


def auth_keys():
    """Exchange username and password for the API keys (for third-party apps)."""
    user = _authenticate()
    return ok(userid=user.id, apikey_write=user.apikey_write, apikey_read=user.apikey_read)


def logout():
    token = session_cookie()
    if token:
        ctx().users.end_session(token)
    response.delete_cookie("hub_session", path="/")
    return ok(message="logged out")


@requires("read", writes=False)
def session_info():
    """Which user and access a key or cookie gives, without revealing the key."""
    current = auth()
    return {"userid": current.user_id, "type": current.level, "admin": current.is_admin}


@requires("session", writes=False)
def get_user():
    return ctx().users.get(auth().user_id).public()


@requires("session")
def set_user():
    """Change email, language ('en'/'cy') or timezone."""
    try:
        user = ctx().users.update_profile(auth().user_id, email=param("email", None),
                                          language=param("language", None),
                                          timezone=param("timezone", None))
    except model.UserError as exc:
        raise _fail(exc) from None
    return ok(user=user.public())


@requires("session")
def change_password():
    try:
        ctx().users.change_password(auth().user_id, param("old"), param("new"),
                                    keep_session=session_cookie() or "")
    except model.UserError as exc:
        raise _fail(exc) from None
    return ok(message="password changed; other sessions were logged out")


def _new_key(kind: str):
    @requires("session")
    def new_key():
        return ok(apikey=ctx().users.new_apikey(auth().user_id, kind))

    new_key.__name__ = f"new_apikey_{kind}"
    new_key.__doc__ = f"Replace the {kind} API key; the old one stops working at once."
    return new_key


@requires("admin")
def issue_reset():
    """Admin: a one-time password-reset token for a user, valid 24 h."""
    try:
        token = ctx().users.issue_reset_token(param_int("userid", minimum=1))
    except model.UserError as exc:
        raise _fail(exc) from None
    return ok(token=token, expires_in=model.RESET_TOKEN_LIFETIME)


def reset_password():
    """Set a new password with an admin-issued token."""
    try:
        user = ctx().users.reset_password(param("token"), param("new"))
    except model.UserError as exc:
        raise _fail(exc) from None
    return ok(userid=user.id, message="password reset; log in with the new password")


@requires("admin", writes=False)
def list_users():
    return [u.public() | {"apikey_read": None, "apikey_write": None}
            for u in ctx().users.list()]


def register(app: bottle.Bottle) -> None:
    app.route("/user/register.json", "POST", register_user)
    app.route("/user/login.json", "POST", login)
    app.route("/user/auth.json", "POST", auth_keys)
    app.route("/user/logout.json", ["GET", "POST"], logout)
    app.route("/user/session.json", "GET", session_info)
    app.route("/user/get.json", "GET", get_user)
    app.route("/user/set.json", "POST", set_user)
    app.route("/user/changepassword.json", "POST", change_password)
    app.route("/user/newapikeyread.json", "POST", _new_key("read"))
    app.route("/user/newapikeywrite.json", "POST", _new_key("write"))
    app.route("/user/resettoken.json", "POST", issue_reset)
    app.route("/user/resetpassword.json", "POST", reset_password)
    app.route("/user/list.json", "GET", list_users)
