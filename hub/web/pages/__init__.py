"""The in-home display: server-rendered pages (templates/), their assets (static/) and the
message catalogues (i18n/). One module per area; each exposes register(app).

A CSRF failure answers 403 as a page; everything else goes through the front controller.
"""

from __future__ import annotations

import functools
from typing import Any

import bottle

from hub.web.pages import account, admin, devices, screens, system
from hub.web.pages.shell import CsrfFailed, render, static

MODULES = (account, screens, devices, system, admin)


class CsrfGuard:
    """Turns a missing or wrong CSRF token into a 403 page (no state was changed)."""

    name = "hub-csrf-guard"
    api = 2

    def apply(self, callback, route):
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except CsrfFailed:
                return render("error", "error.csrf", 403, message_key="error.csrf_text")

        return wrapper


def register(app: bottle.Bottle) -> None:
    before = len(app.routes)
    for module in MODULES:
        module.register(app)
    guard = CsrfGuard()
    app.route("/static/<path:path>", "GET", static)
    for route in app.routes[before:]:
        route.plugins.append(guard)
        # The display's pages and their own session+CSRF JSON calls are not the public API:
        # the OpenAPI document (and its test) leave them out.
        route.config["hub.page"] = True
        route.reset()
