"""The OpenAPI 3.1 description of the hub's HTTP API, written by hand as one table, and the
route that serves it (`GET /openapi.json`).

Each `Op` below documents one operation (a route, or a few alias paths that behave the same):
its methods, the access it needs and its parameters. `document()` turns the table into the
OpenAPI document served at `/openapi.json`. The table is deliberately NOT generated from the
routes: `tests/hub/test_openapi.py` compares the two and fails when a route is missing here,
documented but gone, or guarded differently (`x-access` against the route's `@requires`
level, `x-public-feeds` against the feed controller's `readable` marker).

Access levels (`x-access`), weakest first: anonymous, read (read key, write key or session),
write (write key or session), session (logged-in session only), admin (admin session).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import bottle

from hub import __version__
from hub.web.api import LEVELS

WRITE = ("GET", "POST")  # emoncms tools write by GET; forms and scripts by POST


@dataclass(frozen=True)
class P:
    """A query/form parameter (or a path parameter when the path has `{name}`)."""

    name: str
    type: str = "string"  # JSON schema type
    help: str = ""
    required: bool = False
    enum: tuple = ()
    default: Any = None
    example: Any = None  # a valid value: documentation, and the fuzz test's starting point


@dataclass(frozen=True)
class Op:
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    access: str
    summary: str
    params: tuple[P, ...] = ()
    answers: str = "json"  # json | text | csv | binary | json-or-csv | text-or-json
    public_feeds: bool = False
    tag: str = ""
    notes: str = ""
    result: dict = field(default_factory=dict)  # JSON schema of a 200 answer
    errors: dict = field(default_factory=dict)  # status -> (text, JSON schema or None = text)


def _obj(**props: Any) -> dict:
    return {"type": "object", "properties": props}


def _req(schema: dict, *names: str) -> dict:
    """`schema` with `names` required (the fuzz test holds answers to it)."""
    return {**schema, "required": list(names)}


_N = {"type": ["number", "null"]}
_I = {"type": "integer"}
_S = {"type": "string"}
_B = {"type": "boolean"}
OK = _req(_obj(success={"const": True}), "success")
_KEY = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
KEYS = _req(_obj(success={"const": True}, userid=_I, apikey_read=_KEY, apikey_write=_KEY),
            "success", "userid", "apikey_read", "apikey_write")
FEED = _obj(id=_I, userid=_I, name=_S, tag=_S, interval=_I, unit=_S, public=_B, engine=_I,
            time={"type": ["integer", "null"]}, value=_N, size={"type": ["integer", "null"]})
META = _obj(interval=_I, start_time=_I, end_time=_I, npoints=_I)
HEALTH = _req(_obj(ok=_B, version=_S, components={"type": "object"}), "ok", "components")
TIMEVALUE = _obj(time={"type": ["integer", "null"]}, value=_N)
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
UPDATE_STATUS = _req(_obj(
    state={"enum": ["idle", "downloading", "downloaded", "installing", "rebooting",
                    "waiting_for_reboot", "trial", "done", "rolled_back", "error",
                    "unconfigured", "not_set_up", "unknown"]},
    set_up=_B, can_check=_B, can_install=_B, can_cancel=_B,
    installed={"type": ["object", "null"], "properties": {
        "slot": _STR_OR_NULL, "build_counter": _INT_OR_NULL, "version": _STR_OR_NULL}},
    available={"type": ["object", "null"], "properties": {
        "version": _S, "action_id": _S, "size": _INT_OR_NULL, "mode": _STR_OR_NULL}},
    progress={"type": ["object", "null"], "properties": {
        "bytes": _I, "of": _INT_OR_NULL, "percent": _INT_OR_NULL}},
    last_result={"type": ["object", "null"], "properties": {
        "result": {"enum": ["success", "failure", "cancelled"]}, "version": _STR_OR_NULL,
        "message": _S, "log": {"type": "array", "items": _S}, "at": _STR_OR_NULL}},
    last_poll=_STR_OR_NULL, server_error=_STR_OR_NULL, updated_at=_STR_OR_NULL,
    message=_STR_OR_NULL, errors={"type": "array", "items": _S}),
    "state", "set_up", "installed", "available", "progress", "last_result", "errors")
ROWS = {"type": "array", "items": {}, "description": "[[time, value|null], ...] "
        "(or [value, ...] with timeformat=notime); ids= gives [{feedid, data}, ...]"}

# -- shared parameters ------------------------------------------------------------------------
FEED_ID = P("id", "integer", "Feed id.", required=True)
INPUT_ID = P("inputid", "integer", "Input id.", required=True)
USERNAME = P("username", help="2-64 letters, digits or _ . -", required=True)
PASSWORD = P("password", help="8 to 1024 characters, no control characters, not one of "
                              "the most common passwords.", required=True)
FLAG = ("0", "1")
DATA_PARAMS = (
    P("id", "integer", "Feed id (or `ids`)."),
    P("ids", help="Comma-separated feed ids (up to 100) instead of `id`."),
    P("start", "number", "Start, unix seconds (values over 1e11 are taken as ms).",
      example=1_767_225_600,
      required=True),
    P("end", "number", "End (inclusive), unix seconds or ms.", required=True,
      example=1_767_229_200),
    P("interval", help="Seconds between points, 0 = about 800 points, `original`, or a "
                       "calendar interval: daily, weekly, monthly, annual.", default="0"),
    P("mode", help="Legacy alias of `interval` for calendar intervals."),
    P("average", help="1 = mean of each interval; with ids, one 0/1 per feed, "
                      "comma-separated.", default="0"),
    P("delta", enum=FLAG, help="1 = differences between consecutive values.", default="0"),
    P("skipmissing", enum=FLAG, help="1 = leave out missing values.", default="0"),
    P("limitinterval", enum=FLAG, help="1 = never finer than the feed interval.",
      default="0"),
    P("timeformat", enum=("unix", "unixms", "excel", "iso8601", "notime"),
      help="Time format of each row.", default="unixms"),
    P("timezone", help="IANA timezone for calendar intervals and excel/iso8601 times; "
                       "default: the caller's (or the feed owner's) timezone."),
    P("dp", "integer", "Round values to this many decimals (0-15)."),
    P("csv", enum=FLAG, help="1 = answer CSV `time,value` (multi-feed: a header and one "
                             "column per feed).", default="0"),
)
POST_PARAMS = (
    P("node", help="Node name (or in the path: input/post/<node>)."),
    P("fulljson", help='JSON object {"name": value, ..., "time": t}; answers JSON.',
      example='{"power": 100, "temp": 20.5}'),
    P("json", help="Legacy {name:value,...} text."),
    P("csv", help="Comma-separated values, named 1, 2, 3...", example="100,200"),
    P("data", help="Alias of csv."),
    P("time", help="Unix time of the reading (default: now)."),
)

OPS: tuple[Op, ...] = (
    # -- user ---------------------------------------------------------------------------------
    Op(("/user/register.json",), ("POST",), "anonymous",
       "Create an account: the first (who becomes admin) needs the hub's setup code, later "
       "ones an admin session.",
       (USERNAME, PASSWORD, P("email"),
        P("setup_code", help="The first-run claim code: on the hub's console, in "
                             "cydynni-setup-code.txt on its SD card, or on the box's label.")),
       tag="user", result=KEYS),
    Op(("/user/login.json",), ("POST",), "anonymous",
       "Log in: sets the hub_session cookie. Failed logins lock the address and the account "
       "out for a while (429 with Retry-After), longer each time.",
       (USERNAME, PASSWORD), tag="user",
       result=_req(_obj(success={"const": True}, message=_S, userid=_I, admin=_B),
                   "success", "userid")),
    Op(("/user/auth.json",), ("POST",), "anonymous",
       "Exchange username and password for the API keys (third-party apps).",
       (USERNAME, PASSWORD), tag="user", result=KEYS),
    Op(("/user/logout.json",), WRITE, "anonymous", "End the session.", tag="user"),
    Op(("/user/session.json",), ("GET",), "read",
       "Which user and access level the key or cookie gives.", tag="user",
       result=_req(_obj(userid=_I, type={"enum": list(LEVELS[1:])}, admin=_B),
                   "userid", "type", "admin")),
    Op(("/user/get.json",), ("GET",), "session", "Your account (with API keys).", tag="user"),
    Op(("/user/set.json",), ("POST",), "session", "Change email, language or timezone.",
       (P("email"), P("language", enum=("en", "cy")), P("timezone")), tag="user"),
    Op(("/user/changepassword.json",), ("POST",), "session",
       "Change your password; other sessions are logged out.",
       (P("old", required=True), P("new", required=True)), tag="user"),
    Op(("/user/newapikeyread.json",), ("POST",), "session", "Replace the read API key.",
       tag="user"),
    Op(("/user/newapikeywrite.json",), ("POST",), "session", "Replace the write API key.",
       tag="user"),
    Op(("/user/resettoken.json",), ("POST",), "admin",
       "Admin: a one-time password-reset token for a user (24 h).",
       (P("userid", "integer", required=True),), tag="user"),
    Op(("/user/resetpassword.json",), ("POST",), "anonymous",
       "Set a new password with an admin-issued token.",
       (P("token", required=True), P("new", required=True)), tag="user"),
    Op(("/user/list.json",), ("GET",), "admin", "Admin: every account (without keys).",
       tag="user"),
    # -- health -------------------------------------------------------------------------------
    Op(("/health.json",), ("GET",), "anonymous",
       "200 when MariaDB, Redis, the worker and its broker link are fine, else 503.",
       tag="health", result=HEALTH, errors={"503": ("Some component is down (the "
                                                      "answer says which).", HEALTH)}),
    Op(("/describe",), ("GET",), "anonymous", "Hub type for discovery (`emoncms`).",
       answers="text", tag="health"),
    Op(("/version",), ("GET",), "anonymous", "Hub software version.", answers="text",
       tag="health"),
    Op(("/openapi.json",), ("GET",), "anonymous", "This document.", tag="health"),
    # -- feeds --------------------------------------------------------------------------------
    Op(("/feed/list.json",), ("GET",), "anonymous",
       "Your feeds; with `userid`, that user's public feeds (no key needed).",
       (P("meta", enum=FLAG, help="1 adds start_time, end_time, interval, npoints."),
        P("userid", "integer", "List this user's public feeds.")),
       public_feeds=True, tag="feed", result={"type": "array", "items": FEED}),
    Op(("/feed/create.json",), WRITE, "write", "Create a PHPFina feed; tag+name are unique.",
       (P("name", required=True, help="1-64 letters, digits, spaces or _ - : .",
          example="power"),
        P("tag", help="0-64 letters, digits, spaces or _ - : ."),
        P("engine", "integer", "Only 5 (PHPFina).", default=5),
        P("options", help='JSON {"interval": seconds}; default 10.', example='{"interval": 10}'),
        P("unit", help="Up to 16 characters.")),
       tag="feed", result=_obj(success=_B, feedid=_I, result=_B)),
    Op(("/feed/get.json", "/feed/aget.json"), ("GET",), "anonymous",
       "A feed's fields, or one of them with `field`.",
       (FEED_ID, P("field", help="One field name, e.g. unit.")),
       public_feeds=True, tag="feed", result=FEED),
    Op(("/feed/getmeta.json",), ("GET",), "anonymous",
       "PHPFina meta: interval, start_time, npoints, end_time (unflushed points counted).",
       (FEED_ID,), public_feeds=True, tag="feed", result=META),
    Op(("/feed/getid.json",), ("GET",), "read", "The id of your feed with this name.",
       (P("name", required=True), P("tag")), tag="feed", result=_I),
    Op(("/feed/set.json",), WRITE, "write", "Change name, tag, unit or public.",
       (FEED_ID, P("fields", required=True, help='JSON object, e.g. {"public": true}.',
                   example='{"unit": "W"}')),
       tag="feed"),
    Op(("/feed/delete.json",), WRITE, "write", "Delete a feed and its data.", (FEED_ID,),
       tag="feed"),
    Op(("/feed/value.json",), ("GET",), "anonymous",
       "Last value (or the value at `time`); null when there is none.",
       (FEED_ID, P("time", "number", "Unix time: the nearest stored slot.")),
       public_feeds=True, tag="feed", result=_N),
    Op(("/feed/timevalue.json",), ("GET",), "anonymous", "Last {time, value}.", (FEED_ID,),
       public_feeds=True, tag="feed", result=TIMEVALUE),
    Op(("/feed/fetch.json",), ("GET",), "anonymous",
       "Last values of several feeds; false for a missing or unreadable feed.",
       (P("ids", required=True, help="Comma-separated feed ids."),),
       public_feeds=True, tag="feed", result={"type": "array"}),
    Op(("/feed/data.json",), ("GET",), "anonymous",
       "Values between start and end: sampled or averaged, calendar intervals in a "
       "timezone (DST-correct), JSON or CSV; merges points not yet flushed.",
       DATA_PARAMS, answers="json-or-csv", public_feeds=True, tag="feed", result=ROWS),
    Op(("/feed/average.json",), ("GET",), "anonymous", "feed/data with average=1.",
       DATA_PARAMS, answers="json-or-csv", public_feeds=True, tag="feed", result=ROWS),
    Op(("/feed/csvexport.json",), ("GET",), "anonymous", "feed/data with csv=1.",
       DATA_PARAMS, answers="csv", public_feeds=True, tag="feed"),
    Op(("/feed/export.json",), ("GET",), "anonymous",
       "Raw PHPFina .dat bytes (float32 LE) from byte offset `start`, rounded down to a "
       "point and re-sending one point; flushed data only (backup and sync).",
       (FEED_ID, P("start", "integer", "Byte offset.", default=0)), answers="binary",
       public_feeds=True, tag="feed"),
    Op(("/feed/post.json", "/feed/insert.json", "/feed/update.json"), WRITE, "write",
       "Store one point (`time`, `value`) or many (`data`); buffered, readable at once.",
       (FEED_ID, P("time", "number", "Unix time; default now."), P("value", "number"),
        P("data", help="JSON [[time, value], ...] instead of time and value.",
          example="[[1767225600, 1.5], [1767225610, 2.5]]"),
        P("join", enum=("join", "1", "0"), help="Fill the gap before by interpolation.")),
       tag="feed", result=_obj(success=_B, points=_I)),
    # -- inputs -------------------------------------------------------------------------------
    Op(("/input/post", "/input/post.json"), WRITE, "write",
       "Post readings of a node (emoncms forms); answers `ok`, or {success} for fulljson.",
       POST_PARAMS, answers="text-or-json", tag="input"),
    Op(("/input/post/{node}",), WRITE, "write", "input/post with the node in the path.",
       POST_PARAMS[1:], answers="text-or-json", tag="input"),
    Op(("/input/bulk", "/input/bulk.json"), WRITE, "write",
       "Post many readings: data=[[time_offset, node, v1, v2 | {name: v}, ...], ...].",
       (P("data", required=True, example='[[0, "n", 100, {"temp": 20}]]'),
        P("sentat", "number"), P("offset", "number"),
        P("time", "number")), answers="text", tag="input"),
    Op(("/input/get", "/input/get.json"), ("GET",), "read",
       "Inputs as {node: {name: {time, value, processList}}}.",
       (P("node"), P("name")), tag="input"),
    Op(("/input/get/{node}",), ("GET",), "read", "One node's inputs.", tag="input"),
    Op(("/input/get/{node}/{name}",), ("GET",), "read", "One input {time, value}.",
       tag="input"),
    Op(("/input/list.json",), ("GET",), "read",
       "Flat list [{id, nodeid, name, description, processList, time, value}].",
       tag="input"),
    Op(("/input/set.json",), WRITE, "write", "Change an input's description.",
       (INPUT_ID, P("fields", required=True, help='JSON, e.g. {"description": "..."}.',
                    example='{"description": "kitchen"}')),
       tag="input"),
    Op(("/input/delete.json",), WRITE, "write", "Delete inputs.",
       (P("inputid", "integer"), P("inputids", help="JSON list of ids instead of inputid.",
                                   example="[1]")),
       tag="input"),
    Op(("/input/process/get.json",), ("GET",), "read", "An input's process list.",
       (INPUT_ID,), tag="input"),
    Op(("/input/process/set.json",), ("POST",), "write",
       'Set a process list: processlist=[{"fn": "process__scale", "args": ["0.001"]}, ...].',
       (INPUT_ID, P("processlist", required=True,
                    example='[{"fn": "process__scale", "args": [0.001]}]')), tag="input"),
    Op(("/input/process/reset.json",), WRITE, "write", "Empty an input's process list.",
       (INPUT_ID,), tag="input"),
    Op(("/input/process/list.json",), ("GET",), "read",
       "The processes the hub knows, with their arguments.", tag="input"),

    # -- devices and pairing (hub/web/device.py) -----------------------------------
    Op(("/device/auth/request.json", "/emoncms/device/auth/request.json"), ("GET",),
       "anonymous", "EmonESP pairing request: `request registered` until the household "
       "allows it, then `user:password:basetopic` once (429 when rate-limited).",
       (P("name"), P("type")), answers="text", tag="device",
       errors={"400": ("A parameter is not valid: `bad request` (EmonESP reads text).", None),
               "429": ("Too many requests from this address: `too many requests`, with "
                       "Retry-After.", None)}),
    Op(("/device/auth/pending.json",), ("GET",), "session",
       "Pending pairing requests (also opens the pairing window).", tag="device"),
    Op(("/device/auth/check.json",), ("GET",), "session",
       "emoncms check: the latest pending request, if any.", tag="device"),
    Op(("/device/auth/allow.json",), ("POST",), "session",
       "Allow the device at `ip`: it gets a broker account on its next request.",
       (P("ip", required=True),), tag="device"),
    Op(("/device/auth/deny.json",), ("POST",), "session", "Refuse the device at `ip`.",
       (P("ip", required=True),), tag="device"),
    Op(("/device/pairing/open.json",), ("POST",), "session", "Open the pairing window.",
       tag="device"),
    Op(("/device/list.json",), ("GET",), "read", "Your devices (an admin sees all).",
       tag="device"),
    Op(("/device/get.json",), ("GET",), "read", "One device.",
       (P("id", "integer", "Device id.", required=True),), tag="device"),
    Op(("/device/set.json",), ("POST",), "write", "Rename a device.",
       (P("id", "integer", "Device id.", required=True), P("name", required=True)),
       tag="device"),
    Op(("/device/delete.json",), ("POST",), "session",
       "Remove a device and revoke its broker account.",
       (P("id", "integer", "Device id.", required=True),), tag="device"),
    Op(("/device/account/create.json",), ("POST",), "session",
       "A broker account for a device set up by hand; the password is shown once.",
       (P("type", required=True, enum=("openevse", "tasmota", "emonesp")), P("name")),
       tag="device"),
    Op(("/device/template/list.json",), ("GET",), "anonymous", "Known device templates.",
       tag="device"),
    # -- schedules ----------------------------------------------------------------------------
    Op(("/schedule/list.json",), ("GET",), "read", "Schedules of your devices.",
       tag="schedule"),
    Op(("/schedule/get.json",), ("GET",), "read", "A device's schedule.",
       (P("device", "integer", "Device id.", required=True),), tag="schedule"),
    Op(("/schedule/set.json",), ("POST",), "write",
       "Set a device's schedule (`schedule` JSON, or a JSON body).",
       (P("device", "integer", "Device id.", required=True),
        P("schedule", example='{"ready_by": "07:00", "period": 3600}')),
       tag="schedule"),
    Op(("/schedule/mode.json",), ("POST",), "write", "Change a schedule's mode.",
       (P("device", "integer", "Device id.", required=True),
        P("mode", required=True, example="smart")),
       tag="schedule"),
    Op(("/schedule/delete.json",), ("POST",), "write", "Delete a device's schedule.",
       (P("device", "integer", "Device id.", required=True),), tag="schedule"),
    Op(("/schedule/explain.json",), ("GET",), "read",
       "The chosen slots, their signal and the cost against running now.",
       (P("device", "integer", "Device id.", required=True),), tag="schedule"),
    # -- server sync (hub/web/sync.py) --------------------------------------------------------
    Op(("/sync/status.json",), ("GET",), "read",
       "Server link (never its key), state, last run, per-feed progress and last result: "
       "for the Settings page. `state`: not provisioned | provisioning pending | "
       "provisioning failed | idle | running | error; each feed has `result` ok | partial | "
       "error | missing, `error_code` (unreachable, tls, unauthorized, not_found, "
       "server_error, not_json, not_data, redirect, truncated, too_long, too_slow, "
       "bad_interval, changed, ...), `progress` 0..1 and `bytes`.", tag="sync",
       result=_obj(provisioned=_B, server=_S, state=_S, message=_S,
                   next_run={"type": ["integer", "null"]}, failures=_I,
                   link={"type": ["object", "null"]},
                   last_run=_obj(started=_I, finished=_I, ok=_B, bytes=_I, error=_S,
                                 error_code=_S),
                   feeds={"type": "array", "items": _obj(
                       name=_S, local_id={"type": ["integer", "null"]}, mode=_S, result=_S,
                       bytes=_I, local_bytes=_I, remote_bytes={"type": ["integer", "null"]},
                       progress={"type": "number"}, error=_S, error_code=_S, finished=_I,
                       remote={"type": "object"})},
                   mapping={"type": "array"})),
    Op(("/sync/provision.json",), ("POST",), "admin",
       "Set the server: `url` and the household's read key on it (`server_apikey`), or "
       "`username` + `password` there (exchanged once through user/auth.json, not kept). "
       "Checked with a test call before it is stored; 400 for bad settings, 502 when the "
       "server check fails (the message says why).",
       (P("url", help="https://host[/path]; default the server_url setting."),
        P("server_apikey", help="Read API key on the server (`apikey` is this hub's)."),
        P("username", help="Login on the server."), P("password"),
        P("allow_http", enum=FLAG, help="1 to allow a plain http URL."),
        P("ca_pem", help="PEM of a private CA to trust instead of the system CAs.")),
       tag="sync", result=_obj(success=_B, link={"type": "object"})),
    Op(("/sync/unprovision.json",), ("POST",), "admin",
       "Forget the server link (mirrored feeds stay).", tag="sync"),
    Op(("/sync/run.json",), ("POST",), "session", "Ask the worker for a sync run now.",
       tag="sync"),
    Op(("/sync/mapping.json",), ("GET",), "read",
       "The feed mapping: [{remote_tag ('*' = any), remote_name, local_name}]; local feeds "
       "get tag `server`.", tag="sync"),
    Op(("/sync/mapping.json",), ("POST",), "admin",
       "Replace the feed mapping (JSON body, or a `mapping` parameter).",
       (P("mapping", help="JSON list of rules."),), tag="sync"),
    # -- OTA updates (hub/web/update.py; the agent's file contract is ota/README.md) ----------
    Op(("/update/status.json",), ("GET",), "read",
       "The update agent's status, validated: `state` is one of the agent's (idle, "
       "downloading, downloaded, installing, rebooting, waiting_for_reboot, trial, done, "
       "rolled_back, error, unconfigured) or not_set_up (no status file) or unknown (the file "
       "cannot be read; `errors` says why). `installed` {slot, build_counter, version}, "
       "`available` {version, action_id, size, mode} or null, `progress` {bytes, of, percent} "
       "while downloading, `last_result` {result, version, message, log (last 10 lines), at}, "
       "`last_poll`, `server_error`; `can_install` is true when the agent waits for consent "
       "to reboot into an installed update.", tag="update", result=UPDATE_STATUS),
    Op(("/update/check.json",), ("POST",), "admin",
       "Ask the update agent to poll its server now. 409 when updates are not set up.",
       tag="update"),
    Op(("/update/install.json",), ("POST",), "admin",
       "Consent to the available update (the agent reboots into it on trial). Only the update "
       "the agent reports can be installed, never a chosen version; 409 when none waits for "
       "consent or `action_id` names another.",
       (P("action_id", help="The `available.action_id` the caller saw (optional guard)."),),
       tag="update", result=_req(_obj(success={"const": True}, message=_S, version=_S,
                                      action_id=_S), "success", "version", "action_id")),
    Op(("/update/cancel.json",), ("POST",), "admin",
       "Ask the update agent to stop a running download. 409 when nothing is downloading.",
       tag="update"),)

_SECURITY = {
    "anonymous": [],
    "read": [{"apikey": []}, {"bearer": []}, {"session": []}],
    "write": [{"apikey": []}, {"bearer": []}, {"session": []}],
    "session": [{"session": []}],
    "admin": [{"session": []}],
}
_CONTENT = {
    "json": ("application/json",),
    "text": ("text/plain",),
    "csv": ("text/csv",),
    "binary": ("application/octet-stream",),
    "json-or-csv": ("application/json", "text/csv"),
    "text-or-json": ("text/plain", "application/json"),
}
_ERRORS = {
    "400": "A parameter or the body is missing or invalid; the message names it.",
    "401": "No valid key or session (or, anonymously, the feed is not public).",
    "403": "The key or session is not enough (see x-access), or the feed is another "
           "user's public feed (read-only).",
    "404": "No such feed or input (another user's private feed answers 404 too).",
    # RFC 9112 §6.1: a transfer coding the server does not know gets a 501. The HTTP server
    # answers it before the hub runs, on any path (the API fuzzer sent `Transfer-Encoding: ^k`).
    "501": "The request's Transfer-Encoding names a coding the hub does not implement "
           "(chunked is known, and refused with 411: send a Content-Length).",
}


def _parameter(p: P, in_path: bool) -> dict:
    schema: dict[str, Any] = {"type": p.type}
    if p.enum:
        schema["enum"] = list(p.enum)
    if p.default is not None:
        schema["default"] = p.default
    out = {"name": p.name, "in": "path" if in_path else "query", "schema": schema,
           "required": p.required or in_path}
    if p.help:
        out["description"] = p.help
    if p.example is not None:
        out["example"] = p.example
    return out


def _operation(op: Op, path: str, method: str) -> dict:
    path_names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    params = [_parameter(P(name, required=True), True) for name in path_names]
    params += [_parameter(p, False) for p in op.params]
    content = {kind: ({"schema": op.result} if kind == "application/json" and op.result
                      else {"schema": {"type": "string", "format": "binary"}}
                      if kind == "application/octet-stream" else {})
               for kind in _CONTENT[op.answers]}
    responses: dict[str, Any] = {"200": {"description": "Success.", "content": content}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for status, text in _ERRORS.items():
        if status in ("401", "403") and op.access == "anonymous" and not op.public_feeds:
            continue
        responses[status] = {"description": text, "content": error}
    for status, (text, schema) in op.errors.items():
        responses[status] = {"description": text, "content": (
            {"text/plain": {}} if schema is None else {"application/json": {"schema": schema}})}
    # Every other answer the server itself makes (405, 408, 409, 411, 413, 429, 500, 503…)
    # has the same JSON error shape.
    responses["default"] = {"description": "Any other error, with the status that fits.",
                            "content": error}
    security = list(_SECURITY[op.access])
    if op.public_feeds:
        security = [{}, *_SECURITY["read"]]  # anonymous allowed for public feeds
    operation = {
        "summary": op.summary,
        "operationId": (method.lower() + path.replace("/", "_").replace(".", "_")
                        .replace("{", "").replace("}", "")),
        "tags": [op.tag] if op.tag else [],
        "parameters": params,
        "responses": responses,
        "security": security,
        "x-access": op.access,
        "x-public-feeds": op.public_feeds,
    }
    if op.notes:
        operation["description"] = op.notes
    return operation


def document() -> dict:
    paths: dict[str, dict] = {}
    for op in OPS:
        if op.access not in LEVELS:
            raise ValueError(f"{op.paths}: unknown access {op.access!r}")
        for path in op.paths:
            for method in op.methods:
                entry = paths.setdefault(path, {})
                if method.lower() in entry:
                    raise ValueError(f"{method} {path} is documented twice")
                entry[method.lower()] = _operation(op, path, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CydYnni Hub API",
            "version": __version__,
            "description": (
                "emoncms-compatible HTTP API of the hub. Authenticate with an API key "
                "(`?apikey=`, a POST `apikey` field or `Authorization: Bearer`) or the "
                "`hub_session` cookie from user/login.json. `x-access` is the weakest "
                "access an operation accepts: anonymous < read (read key) < write (write "
                "key) < session (logged in) < admin. `x-public-feeds`: anonymous callers and "
                "other users may read feeds their owner made public. Writes by GET need an "
                "apikey; with a session cookie send them by POST. Errors are "
                "`{\"success\": false, \"message\": ...}` with an HTTP status."),
        },
        "tags": [{"name": t} for t in ("user", "health", "feed", "input", "device",
                                        "schedule", "sync", "update")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apikey": {"type": "apiKey", "in": "query", "name": "apikey",
                           "description": "Read or write key, 32 hex characters."},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The same API key as a bearer token."},
                "session": {"type": "apiKey", "in": "cookie", "name": "hub_session"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["success", "message"],
                          "additionalProperties": False,
                          "properties": {"success": {"const": False},
                                         "message": {"type": "string", "minLength": 1}}},
            },
        },
    }


@functools.cache
def _document() -> dict:
    return document()


def openapi():
    """The API description, for tools and people; no key needed."""
    return _document()


def register(app: bottle.Bottle) -> None:
    app.route("/openapi.json", "GET", openapi)
