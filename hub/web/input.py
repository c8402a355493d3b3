"""Input API, emoncms-compatible: input/post, input/bulk, input/get, input/list, input/set,
input/delete and input/process/*.

Readings posted over HTTP are stored and processed right here in the web process: feed writes
go to the Redis buffer the worker flushes, so web and worker can both write.
`input/post` answers plain `ok` (`{"success": true}` for fulljson), as emoncms does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import bottle
from bottle import request

from hub.input.process import ForeignFeed, MissingFeed, ProcessError, describe
from hub.input.readings import IngestError, parse_bulk, parse_post
from hub.input.store import InputError, InputNotFound
from hub.web.api import (
    ApiError,
    auth,
    ctx,
    loads,
    ok,
    param,
    param_int,
    param_json,
    plain,
    requires,
)

_POST_PARAMS = ("node", "fulljson", "json", "csv", "data", "time", "sentat", "offset")


def _errors(handler: Callable) -> Callable:
    """Model errors → JSON errors with the status that fits."""

    @wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except InputNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except (MissingFeed, ForeignFeed) as exc:
            # Another user's feed answers exactly like a missing one (the feed module's policy),
            # so feed ids of other households do not leak.
            raise ApiError(404, str(exc).replace("belongs to another user",
                                                 "does not exist")) from None
        except (IngestError, InputError, ProcessError) as exc:
            raise ApiError(400, str(exc)) from None

    return wrapper


def _params() -> dict[str, str]:
    found = {}
    for name in _POST_PARAMS:
        value = request.params.getunicode(name)
        if value is not None:
            found[name] = value
    return found


def _ingest(posts: list) -> None:
    report = ctx().inputs.ingest(auth().user_id, posts)
    if report.rejected:
        stored = len(posts) - len(report.rejected)
        raise ApiError(400, f"{report.rejected[0]} ({stored} of {len(posts)} posts stored)")
    if report.errors:  # never a silent success when feed points were lost
        raise ApiError(400, report.not_stored_message())


@requires("write")
@_errors
def post(node: str | None = None):
    params = _params()
    if request.params.getunicode("cb") or request.params.getunicode("c"):
        raise ApiError(400, "compressed posts (cb/c) are not supported; send plain text")
    _ingest([parse_post(params, node)])
    return ok() if "fulljson" in params else plain("ok")


@requires("write")
@_errors
def bulk():
    if request.params.getunicode("cb") or request.params.getunicode("c"):
        raise ApiError(400, "compressed bulk posts (cb/c) are not supported; send plain JSON")
    data = param("data")
    loads(data, "parameter 'data'")  # the bounded parser refuses what parse_bulk can't hold
    _ingest(parse_bulk(data, _params()))
    return plain("ok")


@requires("read")
@_errors
def get(node: str | None = None, name: str | None = None):
    node = node if node is not None else param("node", None)
    name = name if name is not None else param("name", None)
    tree = ctx().inputs.tree(auth().user_id, node, name)
    if node is None:
        return tree
    if node not in tree:
        raise ApiError(404, f"no input {node}/{name}" if name is not None
                       else f"node {node!r} has no inputs")
    if name is None:
        return tree[node]
    return tree[node][name]


@requires("read")
def list_inputs():
    return ctx().inputs.list(auth().user_id)


@requires("write")
@_errors
def set_fields():
    return ok(input=ctx().inputs.set_fields(auth().user_id, param_int("inputid", minimum=1),
                                            param_json("fields")))


@requires("write")
@_errors
def delete():
    ids = param_json("inputids", None)
    if ids is None:
        ids = [param_int("inputid", minimum=1)]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                            for i in ids):
        raise ApiError(400, "inputids must be a JSON list of input ids")
    return ok(deleted=ctx().inputs.delete(auth().user_id, ids))


@requires("read")
@_errors
def process_get():
    return ctx().inputs.get_processlist(auth().user_id, param_int("inputid", minimum=1))


@requires("write")
@_errors
def process_set():
    raw: Any = param("processlist")
    if raw.lstrip().startswith("["):  # JSON (else emoncms' legacy "1:2,3:4" text)
        raw = loads(raw, "parameter 'processlist'")
    stored = ctx().inputs.set_processlist(auth().user_id, param_int("inputid", minimum=1), raw)
    return ok(processList=stored)


@requires("write")
@_errors
def process_reset():
    ctx().inputs.reset_processlist(auth().user_id, param_int("inputid", minimum=1))
    return ok()


@requires("read")
def process_list():
    return describe()


def register(app: bottle.Bottle) -> None:
    both = ["GET", "POST"]
    for suffix in ("", ".json"):
        app.route(f"/input/post{suffix}", both, post)
        app.route(f"/input/bulk{suffix}", both, bulk)
        app.route(f"/input/get{suffix}", "GET", get)
    app.route("/input/post/<node>", both, post)
    app.route("/input/get/<node>", "GET", get)
    app.route("/input/get/<node>/<name>", "GET", get)
    app.route("/input/list.json", "GET", list_inputs)
    app.route("/input/set.json", both, set_fields)
    app.route("/input/delete.json", both, delete)
    app.route("/input/process/get.json", "GET", process_get)
    app.route("/input/process/set.json", "POST", process_set)
    app.route("/input/process/reset.json", both, process_reset)
    app.route("/input/process/list.json", "GET", process_list)
