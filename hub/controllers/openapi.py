"""Serves the OpenAPI 3.1 document of the API (the table lives in hub/openapi.py)."""

from __future__ import annotations

import functools

import bottle

from hub.openapi import document


@functools.cache
def _document() -> dict:
    return document()


def openapi():
    """The API description, for tools and people; no key needed."""
    return _document()


def register(app: bottle.Bottle) -> None:
    app.route("/openapi.json", "GET", openapi)
