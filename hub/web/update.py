"""OTA update routes (`update/<action>.json`): the agent's status for the UI and scripts, and
"check now" / "install now" / "stop the download" for the administrator. The agent does the
work; these only read its status file and leave it a request (hub/update/agent.py).

A household (a non-admin session) and API keys can read the status but not act: an install
is consent to the one update the agent reports as available, never a version of the
caller's choosing.
"""

from __future__ import annotations

import bottle

from hub.update.agent import UpdateRequestError
from hub.web.api import ApiError, ctx, ok, param, requires


@requires("read")
def status():
    """Installed version and slot, available update, state (with download progress), last
    result with its log excerpt, last poll and server error."""
    return ctx().updates.status().as_json()


@requires("admin")
def check():
    _attempt(ctx().updates.check_now)
    return ok(message="the update agent will poll its server within a few seconds")


@requires("admin")
def install():
    action_id = param("action_id", None)
    if action_id is not None and not (0 < len(action_id) <= 64):
        raise ApiError(400, "parameter 'action_id' must be 1 to 64 characters")
    available = _attempt(lambda: ctx().updates.install_now(action_id))
    return ok(message=f"the update agent will restart the hub into {available.version}",
              version=available.version, action_id=available.action_id)


@requires("admin")
def cancel():
    _attempt(ctx().updates.cancel)
    return ok(message="the update agent will stop the download")


def _attempt(action):
    try:
        return action()
    except UpdateRequestError as exc:
        raise ApiError(409, str(exc)) from None
    except OSError as exc:
        raise ApiError(503, f"cannot leave the update agent a request: "
                            f"{exc.strerror or exc}") from None


def register(app: bottle.Bottle) -> None:
    app.route("/update/status.json", "GET", status)
    app.route("/update/check.json", "POST", check)
    app.route("/update/install.json", "POST", install)
    app.route("/update/cancel.json", "POST", cancel)
