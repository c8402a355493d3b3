"""S5 Devices, S6 schedule editor, S7 pairing (the pop-up's Allow/Ignore and progress).

Every POST here needs the session and its CSRF token (form field `csrf` or header
`X-CSRF-Token`). A device's name is shown escaped by the templates."""

from __future__ import annotations

import json
import time
from typing import Any

import bottle
from bottle import request

from hub.device.errors import DeviceError, UnknownDevice
from hub.device.schedule import ScheduleNotFound
from hub.scheduler.errors import SchedulerError
from hub.web.api import ApiError, auth, ctx, ok
from hub.web.pages import fmt
from hub.web.pages.i18n import catalogue
from hub.web.pages.shell import (
    language,
    need_login,
    redirect,
    render,
    require_csrf,
    session_only,
    tz,
)

MODES = ("on", "off", "smart")
DAYS = range(7)
DEFAULT_SCHEDULE = {"ready_by": "07:00", "period": 3600, "interruptible": False,
                    "repeat": [0, 1, 2, 3, 4, 5, 6], "mode": "smart", "on_completion": "smart"}


def _device(device_id: int):
    try:
        device = ctx().devices.get(device_id)
    except UnknownDevice:
        raise ApiError(404, f"no device with id {device_id}") from None
    if device.user_id != auth().user_id and not auth().is_admin:
        raise ApiError(404, f"no device with id {device_id}")
    return device


def _owner() -> int | None:
    return None if auth().is_admin else auth().user_id


def devices_page():
    need_login()
    return render("devices", "devices.title", cards=ctx().display.device_cards(_owner()))


def set_mode(device_id: int):
    need_login()
    require_csrf()
    device = _device(device_id)
    mode = request.forms.getunicode("mode", "")
    if mode not in MODES:
        raise ApiError(400, "mode must be on, off or smart")
    schedules = ctx().schedules
    try:
        schedules.get(device.id)
        schedules.set_mode(device.id, mode)
        schedules.changed()
    except ScheduleNotFound:
        schedules.set(device.id, DEFAULT_SCHEDULE | {"mode": mode})
    if request.get_header("X-CSRF-Token"):
        return ok(mode=mode)
    redirect("/devices")


def _form_definition() -> dict[str, Any]:
    """The editor's form as the schedule API's JSON (validated by the scheduler)."""
    f = request.forms
    try:
        hours = int(f.getunicode("period_h", "0") or 0)
        mins = int(f.getunicode("period_m", "0") or 0)
    except ValueError:
        raise ApiError(400, "run for: hours and minutes must be whole numbers") from None
    days = [d for d in DAYS if f.getunicode(f"day{d}")]
    definition: dict[str, Any] = {
        "ready_by": f.getunicode("ready_by", ""), "period": hours * 3600 + mins * 60,
        "interruptible": bool(f.getunicode("interruptible")), "repeat": days,
        "mode": "smart", "on_completion": f.getunicode("on_completion", "off")}
    if not days:
        definition["repeat"] = []
    return definition


def sentence(result: dict[str, Any], lang: str) -> str:
    """The scheduler's explanation in words: the chosen slots and the saving."""
    cat = catalogue(lang)
    windows = result.get("windows") or []
    if result.get("status") == "error" or not windows:
        return cat.text("schedule.no_plan")
    zone = tz()
    spans = ", ".join(f"{fmt.hhmm(w['start'], zone)}–{fmt.hhmm(w['end'], zone)}"
                      for w in windows)
    text = cat.text("schedule.runs", spans=spans)
    percent = result.get("better_than_run_now_percent")
    if isinstance(percent, (int, float)) and percent > 0.5:
        text += " " + cat.text("schedule.saving", percent=f"{percent:.0f}")
    return text


def schedule_page(device_id: int, error: str | None = None, saved: bool = False,
                  status: int = 200, form: dict[str, Any] | None = None):
    need_login()
    device = _device(device_id)
    try:
        definition = ctx().schedules.get(device.id).definition.to_json()
        preview = ctx().display.plan_preview(device.id, definition)
    except ScheduleNotFound:
        definition, preview = dict(DEFAULT_SCHEDULE), None
    except SchedulerError as exc:
        preview = {"status": "error", "message": str(exc), "windows": []}
    definition = form or definition
    repeat = set(definition.get("repeat") or [])
    period = int(definition.get("period", 3600))
    return render("schedule", "schedule.title", status, device=device, d=definition,
                  repeat=repeat, period_h=period // 3600, period_m=period % 3600 // 60,
                  preview=preview, sentence=sentence(preview or {}, language()),
                  preview_json=json.dumps(preview or {}).replace("</", "<\\/"),
                  error=error, saved=saved)


def schedule_save(device_id: int):
    need_login()
    require_csrf()
    device = _device(device_id)
    definition = _form_definition()
    try:
        ctx().schedules.set(device.id, definition)
    except (SchedulerError, DeviceError) as exc:
        return schedule_page(device_id, error=str(exc), status=400, form=definition)
    return schedule_page(device_id, saved=True)


def schedule_preview(device_id: int):
    """POST the unsaved form, get the plan the scheduler would make now (nothing stored)."""
    need_login()
    require_csrf()
    device = _device(device_id)
    try:
        result = ctx().display.plan_preview(device.id, _form_definition())
    except SchedulerError as exc:
        raise ApiError(400, str(exc)) from None
    zone = tz()
    result["windows_local"] = [[fmt.hhmm(w["start"], zone), fmt.hhmm(w["end"], zone)]
                               for w in result.get("windows", [])]
    return ok(plan=result, sentence=sentence(result, language()))


# -- S7 pairing ---------------------------------------------------------------------------

def pair_allow():
    need_login()
    require_csrf()
    try:
        device = ctx().pairing.allow(request.forms.getunicode("ip", ""), auth().user_id)
    except DeviceError as exc:
        raise ApiError(404 if "pending" in str(exc).lower() else 400, str(exc)) from None
    return ok(device=device.id, window=ctx().config.pairing_window)


def pair_ignore():
    need_login()
    require_csrf()
    try:
        ctx().pairing.deny(request.forms.getunicode("ip", ""))
    except DeviceError as exc:
        raise ApiError(404, str(exc)) from None
    return ok()


@session_only
def pair_progress(device_id: int):
    """sending (account made) → connected (credentials fetched) → reading (first report)."""
    try:
        device = _device(device_id)
    except ApiError:
        return ok(step="gone")
    state = ctx().devices.state(device.id)
    if device.status == "pairing":
        step = "sending"
    elif set(state) - {"present", "last_seen"}:  # a report, not just its announcement
        step = "reading"
    else:
        step = "connected"
    return ok(step=step, name=device.name, power=state.get("power"), checked=int(time.time()))


def pair_page():
    need_login()
    ctx().pairing.open_window()
    return render("pair", "pair.title", pending=ctx().pairing.pending())


def register(app: bottle.Bottle) -> None:
    app.route("/devices", "GET", devices_page)
    app.route("/devices/pair", "GET", pair_page)
    app.route("/devices/<device_id:int>/mode", "POST", set_mode)
    app.route("/devices/<device_id:int>/schedule", "GET", schedule_page)
    app.route("/devices/<device_id:int>/schedule", "POST", schedule_save)
    app.route("/devices/<device_id:int>/schedule/preview", "POST", schedule_preview)
    app.route("/devices/pair/allow", "POST", pair_allow)
    app.route("/devices/pair/ignore", "POST", pair_ignore)
    app.route("/devices/pair/<device_id:int>", "GET", pair_progress)
