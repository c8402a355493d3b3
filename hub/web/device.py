"""Device routes: pairing (EmonESP auth request), the device list, accounts, schedules.

The auth request is unauthenticated (the device has nothing yet) and answers plain text as
EmonESP parses it; the device's address is the TCP peer (REMOTE_ADDR), never a header a
client could forge. Everything the household does needs a session or a key, as noted.
Pending requests are also announced on the Redis pub/sub channel `<prefix>events`.
"""

from __future__ import annotations

import secrets
import time

import bottle
from bottle import request

from hub.device.dynsec import TopicGrant, new_password, own_topic
from hub.device.errors import (
    BrokerAdminError,
    DeviceError,
    NoPendingRequest,
    PairingError,
    PairingRateLimited,
    UnknownDevice,
    UnknownDeviceType,
)
from hub.device.planning import PLAN_EVERY_S, preview
from hub.device.schedule import ScheduleNotFound
from hub.device.store import InvalidDevice
from hub.device.templates import templates
from hub.scheduler.errors import ReadyByPassed, SchedulerError
from hub.web.api import (
    ApiError,
    auth,
    ctx,
    json_body,
    ok,
    param,
    param_int,
    param_json,
    plain,
    requires,
)


def _fail(exc: Exception) -> ApiError:
    status = {UnknownDevice: 404, ScheduleNotFound: 404, NoPendingRequest: 404,
              PairingRateLimited: 429, BrokerAdminError: 503, ReadyByPassed: 400,
              UnknownDeviceType: 400, InvalidDevice: 400}
    for kind, code in status.items():
        if isinstance(exc, kind):
            return ApiError(code, str(exc))
    return ApiError(400, str(exc))


def _device(device_id: int):
    try:
        device = ctx().devices.get(device_id)
    except UnknownDevice as exc:
        raise _fail(exc) from None
    if device.user_id != auth().user_id and not auth().is_admin:
        raise ApiError(404, f"no device with id {device_id}")
    return device


# -- pairing -----------------------------------------------------------------------------------

def auth_request():
    """EmonESP: `request registered` until allowed, then `user:password:basetopic` once."""
    try:
        answer = ctx().pairing.request(
            request.environ.get("REMOTE_ADDR", ""), request.get_header("User-Agent", ""),
            request.query.getunicode("name", ""), request.query.getunicode("type", ""))
    except PairingRateLimited:
        bottle.response.status = 429
        bottle.response.set_header("Retry-After", "60")
        return plain("too many requests")
    except PairingError:
        bottle.response.status = 400
        return plain("bad request")
    bottle.response.status = answer.status
    bottle.response.set_header("Cache-Control", "no-store")
    return plain(answer.text)


@requires("session", writes=False)  # opens the pairing window; allowing needs a POST
def auth_pending():
    pairing = ctx().pairing
    pairing.open_window()
    return ok(requests=pairing.pending())


@requires("session", writes=False)
def auth_check():
    """emoncms' check: the latest pending request, if any."""
    pairing = ctx().pairing
    pairing.open_window()
    pending = pairing.pending()
    if not pending:
        return ok(message="No authentication request registered")
    return ok(ip=pending[-1]["ip"])


@requires("session")
def auth_allow():
    try:
        device = ctx().pairing.allow(param("ip"), auth().user_id)
    except DeviceError as exc:
        raise _fail(exc) from None
    return ok(device=device.to_json(), window=ctx().config.pairing_window)


@requires("session")
def auth_deny():
    try:
        ctx().pairing.deny(param("ip"))
    except DeviceError as exc:
        raise _fail(exc) from None
    return ok()


@requires("session")
def pairing_open():
    ctx().pairing.open_window()
    return ok()


# -- devices -----------------------------------------------------------------------------------

@requires("read")
def device_list():
    store = ctx().devices
    user = None if auth().is_admin else auth().user_id
    return [store.describe(d) for d in store.list(user_id=user)]


@requires("read")
def device_get():
    return ctx().devices.describe(_device(param_int("id")))


@requires("write")
def device_set():
    device = _device(param_int("id"))
    try:
        updated = ctx().devices.update(device.id, name=param("name"))
    except DeviceError as exc:
        raise _fail(exc) from None
    return ok(device=updated.to_json())


@requires("session")
def device_delete():
    device = _device(param_int("id"))
    try:
        ctx().devices.remove(device.id)
    except DeviceError as exc:
        raise _fail(exc) from None
    return ok(message=f"device {device.id} removed; its broker account is revoked")


@requires("session")
def account_create():
    """A broker account for a device configured by hand (OpenEVSE, Tasmota); shown once."""
    kind = param("type")
    suffix = secrets.token_hex(3)
    base_root = ctx().config.mqtt_base_topic
    if kind == "openevse":
        username = f"evse-{suffix}"
        base = f"{base_root}/{username}"
        grants = [*own_topic(base), TopicGrant("openevse/announce/+", subscribe=False)]
        answer = {"mqtt_topic": base}
    elif kind == "tasmota":
        username = base = f"tas-{suffix}"
        grants = [TopicGrant(f"cmnd/{base}/#", publish=False),
                  TopicGrant(f"stat/{base}/#", subscribe=False),
                  TopicGrant(f"tele/{base}/#", subscribe=False)]
        answer = {"topic": base, "full_topic": "%prefix%/%topic%/"}
    elif kind == "emonesp":
        username = f"esp-{suffix}"
        base = f"{base_root}/{username}"
        grants = own_topic(base)
        answer = {"mqtt_topic": base}
    else:
        raise ApiError(400, "type must be openevse, tasmota or emonesp")
    name = param("name", username)
    password = new_password()
    try:
        with ctx().broker_admin() as admin:
            admin.create_device_account(username, password, grants)
        try:
            device = ctx().devices.create(auth().user_id, name, kind, base,
                                          mqtt_username=username)
        except DeviceError:
            with ctx().broker_admin() as admin:
                admin.delete_device_account(username)
            raise
    except DeviceError as exc:
        raise _fail(exc) from None
    return ok(device=device.to_json(), mqtt_user=username, mqtt_password=password, **answer)


def template_list():
    return templates()


# -- schedules ---------------------------------------------------------------------------------

@requires("read")
def schedule_list():
    store = ctx().schedules
    mine = {d.id for d in ctx().devices.list(None if auth().is_admin else auth().user_id)}
    return [s.to_json() for s in store.list() if s.device_id in mine]


@requires("read")
def schedule_get():
    device = _device(param_int("device"))
    try:
        return ctx().schedules.get(device.id).to_json()
    except ScheduleNotFound as exc:
        raise _fail(exc) from None


@requires("write")
def schedule_set():
    device = _device(param_int("device"))
    body = json_body() if request.content_type.startswith("application/json") else None
    if body is None:
        body = param_json("schedule")
    try:
        stored = ctx().schedules.set(device.id, body)
    except (SchedulerError, DeviceError) as exc:
        raise _fail(exc) from None
    return ok(schedule=stored.to_json())


@requires("write")
def schedule_mode():
    device = _device(param_int("device"))
    try:
        ctx().schedules.get(device.id)
        ctx().schedules.set_mode(device.id, param("mode"))
    except (ScheduleNotFound, SchedulerError) as exc:
        raise _fail(exc) from None
    ctx().schedules.changed()
    return ok()


@requires("write")
def schedule_delete():
    device = _device(param_int("device"))
    try:
        ctx().schedules.delete(device.id)
    except ScheduleNotFound as exc:
        raise _fail(exc) from None
    return ok()


@requires("read")
def schedule_explain():
    """The chosen slots, their signal, and the cost against running now."""
    device = _device(param_int("device"))
    try:
        hub = ctx()
        stored = hub.schedules.get(device.id)
        now = time.time()
        last = stored.last_plan or {}
        # What the worker planned a moment ago is what the device was told; else plan now.
        fresh = abs(now - last.get("advanced_to", 0)) <= 2 * PLAN_EVERY_S
        if not fresh:
            signal, source = hub.signal.current(hub.signal.load(), now)
            last = preview(stored, signal, source, now, hub.config.timezone)
        return ok(device=device.id, schedule=stored.definition.to_json(), explanation=last,
                  last_plan=stored.last_plan, last_command=stored.last_command)
    except (ScheduleNotFound, SchedulerError) as exc:
        raise _fail(exc) from None


def register(app: bottle.Bottle) -> None:
    for prefix in ("", "/emoncms"):  # EmonESP hard-codes /emoncms/device/auth/request.json
        app.route(f"{prefix}/device/auth/request.json", "GET", auth_request)
    app.route("/device/auth/pending.json", "GET", auth_pending)
    app.route("/device/auth/check.json", "GET", auth_check)
    app.route("/device/auth/allow.json", "POST", auth_allow)
    app.route("/device/auth/deny.json", "POST", auth_deny)
    app.route("/device/pairing/open.json", "POST", pairing_open)
    app.route("/device/list.json", "GET", device_list)
    app.route("/device/get.json", "GET", device_get)
    app.route("/device/set.json", "POST", device_set)
    app.route("/device/delete.json", "POST", device_delete)
    app.route("/device/account/create.json", "POST", account_create)
    app.route("/device/template/list.json", "GET", template_list)
    app.route("/schedule/list.json", "GET", schedule_list)
    app.route("/schedule/get.json", "GET", schedule_get)
    app.route("/schedule/set.json", "POST", schedule_set)
    app.route("/schedule/mode.json", "POST", schedule_mode)
    app.route("/schedule/delete.json", "POST", schedule_delete)
    app.route("/schedule/explain.json", "GET", schedule_explain)
