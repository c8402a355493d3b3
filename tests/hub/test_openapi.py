"""The OpenAPI document against the real app: same routes, same access levels, valid 3.1."""

from __future__ import annotations

import re

import pytest

from hub.web.app import create_app
from hub.web.openapi import LEVELS, document

_WILDCARD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")


def app_routes(ctx) -> dict[tuple[str, str], object]:
    """(METHOD, OpenAPI path) -> handler of every API route the app serves (the display's
    pages, marked `hub.page`, are HTML for browsers, not API)."""
    app = create_app(ctx.config, ctx)
    return {(route.method, _WILDCARD.sub(r"{\1}", route.rule)): route.callback
            for route in app.routes if not route.config.get("hub.page")}


def documented() -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, item in document()["paths"].items()
            for method, op in item.items()}


@pytest.fixture
def routes(ctx):
    return app_routes(ctx)


def test_every_route_is_documented_and_nothing_else(routes):
    served, described = set(routes), set(documented())
    missing = sorted(f"{m} {p}" for m, p in served - described)
    stale = sorted(f"{m} {p}" for m, p in described - served)
    assert not missing, f"routes missing from hub/web/openapi.py: {missing}"
    assert not stale, f"documented in hub/web/openapi.py but not served: {stale}"


def test_documented_access_is_the_routes_required_level(routes):
    ops = documented()
    wrong = []
    for key, handler in sorted(routes.items()):
        level = getattr(handler, "required_level", "anonymous")
        public = getattr(handler, "public_feeds", False)
        op = ops.get(key)
        if op is None:
            continue  # reported by the test above
        if (op["x-access"], op["x-public-feeds"]) != (level, public):
            wrong.append(f"{key[0]} {key[1]}: documented {op['x-access']}"
                         f"{' +public feeds' if op['x-public-feeds'] else ''}, route "
                         f"requires {level}{' +public feeds' if public else ''}")
    assert not wrong, "\n".join(wrong)


def test_security_follows_access():
    for (method, path), op in documented().items():
        assert op["x-access"] in LEVELS
        names = [next(iter(req), None) for req in op["security"]]
        if op["x-public-feeds"]:
            assert None in names, f"{method} {path}: public feeds need optional security"
        elif op["x-access"] == "anonymous":
            assert op["security"] == [], f"{method} {path}"
        elif op["x-access"] in ("session", "admin"):
            assert names == ["session"], f"{method} {path}: API keys cannot do this"
        else:
            assert set(names) == {"apikey", "bearer", "session"}, f"{method} {path}"


def test_path_parameters_are_declared():
    for (method, path), op in documented().items():
        in_path = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert in_path == declared, f"{method} {path}"


def test_served_document_is_valid_openapi_3_1(client):
    res = client.get("/openapi.json")
    assert res.status == 200 and res.headers["content-type"] == "application/json"
    doc = res.json()
    assert doc["openapi"] == "3.1.0" and doc == document()
    validator = pytest.importorskip(
        "openapi_spec_validator",
        reason="openapi-spec-validator is not installed (add it to requirements-test.txt)")
    validator.validate(doc)
