"""The device service of `hub worker`: device announcements and reports, and the schedules.

Messages (all parsed as hostile input; a bad one is logged, rate-limited, and dropped):
- `<base>/.../<node>/describe` (EmonESP, payload = node type) adds or refreshes an EmonESP
  device; `openevse/announce/<id>` an OpenEVSE; `tele/<t>/LWT` a Tasmota. Unknown types are
  logged and ignored. A new device gets the inputs/feeds of its template.
- Any other message under a known device's topic goes to its adapter; the resulting report
  updates the live state in Redis. A manual change at the device (EmonESP button, OpenEVSE
  override, a Tasmota POWER report that is not the hub's last command) wins: the schedule's
  mode follows it, and the hub records it as its own last command so it does not undo it.
- Each device may send FLOOD_RATE messages a second (burst FLOOD_BURST); the rest are dropped
  so a flooding device costs others nothing.
- `cydynni/profile/demandshaper` is the signal (validated by hub.scheduler.signal; a bad
  profile keeps the previous one). It is kept in Redis so a restarted worker has it. Without
  a current profile the flat off-peak tariff is used.

Schedules are run every minute, at once when a schedule changes, and when a new profile
arrives: every pending occurrence is re-planned with hub.scheduler (a started contiguous run
is never moved, an interruptible one is re-optimised for what is left), the occurrence rolls
over at its ready-by time (DST-safe, local time), and the device gets a command only when the
command differs from the last one sent, which is stored with the schedule — so a restart
never switches a device twice. Devices that run windows themselves (EmonESP) get the active
or next window (if it starts within a day, as their timer repeats daily); the others are
switched on and off at the window edges.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from hub.devices.adapters import Command, Report, adapter_for
from hub.devices.adapters.emonesp import NODE_TYPES
from hub.devices.adapters.openevse import parse_announce
from hub.devices.discovery import Broadcaster, Mdns
from hub.devices.errors import DeviceError, DeviceMessageError
from hub.devices.pairing import Pairing
from hub.devices.templates import apply_template, link_inputs
from hub.models.devices import Device, validate_topic
from hub.scheduler.errors import NoSignal, ReadyByPassed, SchedulerError
from hub.scheduler.plan import (
    Occurrence,
    Plan,
    advance,
    explain,
    new_occurrence,
    plan,
    roll_over,
)
from hub.scheduler.signal import OffPeakTariffSource, ProfileSource, Signal

log = logging.getLogger(__name__)

PROFILE_TOPIC = "cydynni/profile/demandshaper"
PLAN_EVERY_S = 60
STATE_POLL_S = 300
PAIRING_CHECK_S = 5
FLOOD_RATE, FLOOD_BURST = 10.0, 50.0
COMMAND_GRACE_S = 10  # a device's report this soon after a command is its answer, not a button
TIMER_HORIZON_S = 86_400 - 60  # EmonESP's timer repeats daily: only send windows within a day
LOG_EVERY_S = 60
LINK_EVERY_S = 300  # template inputs appear with the first readings: look for them this often
MAX_DEVICES = 200  # announcements cannot grow the device table without bound


def _current(profile: ProfileSource, tariff: OffPeakTariffSource,
             now: float) -> tuple[Signal, str]:
    """The latest profile while it still covers now; the off-peak tariff otherwise."""
    try:
        sig = profile.signal(int(now))
        if sig.end > now:
            return sig, "demand-shaper profile"
    except NoSignal:
        pass
    return tariff.signal(int(now)), "off-peak tariff"


def current_signal(ctx, now: float) -> tuple[Signal, str]:
    """The signal the service plans with, for processes other than the worker."""
    profile = ProfileSource()
    raw = ctx.redis.get(ctx.key("devices", "profile"))
    if raw:
        with contextlib.suppress(ValueError, SchedulerError):
            profile.update(json.loads(raw))
    return _current(profile, OffPeakTariffSource(ctx.config.timezone), now)


def preview(ctx, stored, now: float) -> dict[str, Any]:
    """What the schedule does if planned now: the scheduler's explanation of its choice."""
    defn = stored.definition
    if defn.mode != "smart":
        return {"status": defn.mode, "windows": []}
    signal, source = current_signal(ctx, now)
    occ = stored.occurrence
    if occ is None or occ.ready_by <= now:
        occ = new_occurrence(defn, int(now), ctx.config.timezone)
    result = plan(defn, occ, signal, int(now))
    return {**explain(result, signal, int(now), ctx.config.timezone),
            "ready_by": result.ready_by, "remaining_s": result.remaining_s,
            "signal_source": source}


class DeviceService:
    def __init__(self, ctx, publish: Callable[..., None],
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.publish = publish
        self.clock = clock
        self.config = ctx.config
        self.base = ctx.config.mqtt_base_topic
        self.tz = ZoneInfo(ctx.config.timezone)
        self.pairing = Pairing(ctx)
        self.profile = ProfileSource()
        self.tariff = OffPeakTariffSource(ctx.config.timezone)
        self.by_topic: dict[str, Device] = {}
        self.by_id: dict[int, Device] = {}
        self.devices_version: int | None = None
        self.schedules_version: int | None = None
        self.replan = True
        self.next_plan = 0.0
        self.next_pairing_check = 0.0
        self.next_link = 0.0
        self.last_poll: dict[int, float] = {}
        self.sent_at: dict[int, float] = {}
        self.buckets: dict[str, tuple[float, float]] = {}
        self.dropped: dict[str, int] = {}
        self.last_log: dict[str, float] = {}
        self.broadcaster = Broadcaster() if ctx.config.broadcast_enabled else None
        self.mdns = (Mdns(ctx.config.web_port, ctx.config.mqtt_port)
                     if ctx.config.mdns_enabled else None)
        self._load_profile()

    # -- worker interface --------------------------------------------------------------------

    def topics(self) -> list[str]:
        return [f"{self.base}/#", "openevse/announce/+", "stat/+/+", "tele/+/+",
                PROFILE_TOPIC]

    def on_connect(self) -> None:
        self.replan = True

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._route(topic, payload)
        except DeviceError as exc:
            self._problem(topic, "dropped a device message on %r: %s", topic[:80], exc)

    def tick(self, now: float) -> None:
        self._refresh_devices()
        if now >= self.next_pairing_check:
            self.next_pairing_check = now + PAIRING_CHECK_S
            self.pairing.expire(now)
            if self.broadcaster is not None:
                self.broadcaster.tick(now, self.pairing.window_open())
        if self.mdns is not None:
            self.mdns.tick(now)
        version = self.ctx.schedules.version()
        if version != self.schedules_version:
            self.schedules_version = version
            self.replan = True
        if self.replan or now >= self.next_plan:
            self.replan = False
            self.next_plan = (now // PLAN_EVERY_S + 1) * PLAN_EVERY_S
            self.run_schedules(now)
        self._poll_states(now)
        if now >= self.next_link:
            self.next_link = now + LINK_EVERY_S
            self.link_template_inputs()

    def link_template_inputs(self) -> None:
        for device in self.by_id.values():
            if device.status != "active":
                continue
            try:
                link_inputs(self.ctx, device)
            except Exception as exc:  # a template problem must not stop the service
                self._problem(f"link:{device.id}", "template inputs of device %s: %s",
                              device.id, exc)

    def stop(self) -> None:
        if self.mdns is not None:
            self.mdns.stop()

    # -- routing -----------------------------------------------------------------------------

    def _refresh_devices(self, force: bool = False) -> None:
        version = self.ctx.devices.version()
        if not force and version == self.devices_version:
            return
        self.devices_version = version
        devices = self.ctx.devices.list()
        self.by_id = {d.id: d for d in devices}
        self.by_topic = {(d.type, d.base_topic): d for d in devices}

    def _find(self, topic: str) -> tuple[Device, str] | None:
        """The device whose base topic is the longest prefix of `topic`, and the rest."""
        parts = topic.split("/")
        for n in range(len(parts), 0, -1):
            prefix = "/".join(parts[:n])
            for kind in ("emonesp", "openevse"):
                device = self.by_topic.get((kind, prefix))
                if device is not None:
                    return device, "/".join(parts[n:])
        return None

    def _route(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message or a request from the hub itself
        if self.devices_version is None:
            self._refresh_devices()
        if topic == PROFILE_TOPIC:
            self._on_profile(payload)
            return
        parts = topic.split("/")
        if parts[0] == "openevse" and len(parts) == 3 and parts[1] == "announce":
            if self._allow(topic):
                self._on_openevse_announce(payload)
            return
        if parts[0] in ("stat", "tele") and len(parts) == 3:
            self._on_tasmota(parts[0], parts[1], parts[2], topic, payload)
            return
        if parts[-1] == "describe" and len(parts) >= 3:
            if self._allow("/".join(parts[:-1])):
                self._on_describe("/".join(parts[:-1]), payload)
            return
        found = self._find(topic)
        if found is None:
            return  # meter readings and other traffic: not ours
        device, subtopic = found
        if self._allow(device.base_topic):
            self._on_report(device, subtopic, payload)

    def _allow(self, key: str) -> bool:
        """Token bucket per device topic: a flooding device is cut off, others carry on."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (FLOOD_BURST, now))
        tokens = min(FLOOD_BURST, tokens + (now - last) * FLOOD_RATE)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            self.dropped[key] = self.dropped.get(key, 0) + 1
            self._problem(f"flood:{key}", "device at %r floods (%d messages dropped so far)",
                          key[:80], self.dropped[key])
            return False
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 10_000:
            self.buckets.clear()
        return True

    def _problem(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last_log.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            self.last_log[key] = now
            log.warning(msg, *args)
        if len(self.last_log) > 10_000:
            self.last_log.clear()

    # -- announcements -----------------------------------------------------------------------

    def _announced(self, type_: str, base_topic: str, node_type: str, name: str,
                   present: bool = True) -> Device:
        """Find or create the device for an announcement and mark it present."""
        validate_topic(base_topic)
        device = self.by_topic.get((type_, base_topic))
        if device is None and type_ == "emonesp":
            # A paired EmonESP was given `<base>/<account>`; it announces `<that>/<node>`.
            parent = self._find(base_topic)
            if parent and parent[0].type == "emonesp" and not parent[0].node_type \
                    and parent[1] and "/" not in parent[1]:
                device = self.ctx.devices.update(parent[0].id, base_topic=base_topic,
                                                 node_type=node_type, name=parent[1])
                self._refresh_devices(force=True)
        if device is None:
            if len(self.by_id) >= MAX_DEVICES:
                raise DeviceError(f"device limit of {MAX_DEVICES} reached; {base_topic!r} "
                                  "ignored (remove unused devices)")
            device = self.ctx.devices.create(self.config.mqtt_user_id, name or base_topic[-64:],
                                             type_, base_topic, node_type=node_type)
            self._refresh_devices(force=True)
            log.info("new %s device %s (%s) on %s", type_, device.id, node_type or "-",
                     base_topic)
            try:
                apply_template(self.ctx, device)
            except Exception as exc:  # a template problem must not lose the device
                log.warning("template for device %s not applied: %s", device.id, exc)
        elif node_type and device.node_type != node_type:
            device = self.ctx.devices.update(device.id, node_type=node_type)
        if device.status == "pairing":
            return device  # not yet fetched its credentials: wait
        self.ctx.devices.seen(device.id, present, self.clock())
        return device

    def _on_describe(self, base_topic: str, payload: bytes) -> None:
        node_type = payload.decode("utf-8", "replace").strip()[:32]
        if node_type not in NODE_TYPES:
            raise DeviceMessageError(f"unknown EmonESP node type {node_type[:32]!r}; known: "
                                     f"{', '.join(NODE_TYPES)}")
        device = self._announced("emonesp", base_topic, node_type, base_topic.split("/")[-1])
        self._query(device)

    def _on_openevse_announce(self, payload: bytes) -> None:
        base, connected, name = parse_announce(payload)
        self._announced("openevse", base, "openevse", name or base.split("/")[-1], connected)

    def _on_tasmota(self, prefix: str, t: str, leaf: str, topic: str, payload: bytes) -> None:
        if not self._allow(f"tasmota:{t}"):
            return
        device = self.by_topic.get(("tasmota", t))
        if device is None:
            if leaf != "LWT":
                return  # stat/tele traffic of a device we have not seen announce itself
            report = adapter_for("tasmota").parse(None, "tele/LWT", payload)
            device = self._announced("tasmota", t, "tasmota", t, bool(report and report.present))
            if report and report.present:
                self._query(device)
            return
        self._on_report(device, f"{prefix}/{leaf}", payload)

    # -- reports -----------------------------------------------------------------------------

    def _on_report(self, device: Device, subtopic: str, payload: bytes) -> None:
        if device.status == "pairing":
            return
        report = adapter_for(device.type).parse(device, subtopic, payload)
        if report is None:
            return
        now = self.clock()
        state: dict[str, Any] = dict(report.fields)
        if report.power is not None:
            state["power"] = report.power
        if report.mode is not None:
            state["mode"] = report.mode
        if report.present is not None:
            state["present"] = report.present
        state["last_seen"] = int(now)
        before = self.ctx.devices.state(device.id)
        self.ctx.devices.set_state(device.id, **state)
        changed = {k: state[k] for k in ("power", "mode", "present")
                   if k in state and before.get(k) != state[k]}
        if changed:  # for the UI: only real changes, not every periodic report
            self.pairing.publish_event("device_state", device_id=device.id, **changed)
        if self._is_manual(device, subtopic, report, now):
            self._follow_device(device, report.mode)

    def _is_manual(self, device: Device, subtopic: str, report: Report, now: float) -> bool:
        if report.mode not in ("on", "off"):
            return False
        if report.manual:
            return True
        if device.type == "tasmota" and subtopic in ("stat/POWER", "stat/RESULT"):
            if now - self.sent_at.get(device.id, float("-inf")) < COMMAND_GRACE_S:
                return False
            last = self._last_command(device.id)
            return last is not None and last.get("action") in ("on", "off") and \
                last["action"] != report.mode
        return False

    def _last_command(self, device_id: int) -> dict[str, Any] | None:
        from hub.models.schedules import ScheduleNotFound

        try:
            return self.ctx.schedules.get(device_id).last_command
        except ScheduleNotFound:
            return None

    def _follow_device(self, device: Device, mode: str) -> None:
        """A person switched the device: the hub's view (and the schedule's mode) follows."""
        from hub.models.schedules import ScheduleNotFound

        try:
            stored = self.ctx.schedules.get(device.id)
        except ScheduleNotFound:
            return
        if stored.definition.mode != mode:
            self.ctx.schedules.set_mode(device.id, mode)
            log.info("device %s was switched %s at the device; its schedule follows", device.id,
                     mode)
        self.ctx.schedules.save_last_command(device.id, Command(mode).to_json())
        self.replan = True

    def _query(self, device: Device) -> None:
        self.last_poll[device.id] = self.clock()
        for msg in adapter_for(device.type).query(device):
            self.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)

    def _poll_states(self, now: float) -> None:
        for device in self.by_id.values():
            if device.status == "active" and \
                    now - self.last_poll.get(device.id, now - STATE_POLL_S / 2) >= STATE_POLL_S:
                self._query(device)

    # -- signal ------------------------------------------------------------------------------

    def _profile_key(self) -> str:
        return self.ctx.key("devices", "profile")

    def _load_profile(self) -> None:
        try:
            raw = self.ctx.redis.get(self._profile_key())
        except Exception as exc:  # Redis not up yet: start anyway, the next profile will do
            log.warning("cannot read the stored demand-shaper profile: %s", exc)
            return
        if raw:
            try:
                self.profile.update(json.loads(raw))
            except (ValueError, SchedulerError) as exc:
                log.warning("stored demand-shaper profile ignored: %s", exc)

    def _on_profile(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            self.profile.update(doc)
        except (ValueError, SchedulerError) as exc:
            raise DeviceMessageError(f"demand-shaper profile refused, previous one kept: "
                                     f"{exc}") from exc
        self.ctx.redis.set(self._profile_key(), payload)
        self.replan = True
        log.info("new demand-shaper profile; re-planning every schedule")

    def signal(self, now: float) -> Signal:
        return _current(self.profile, self.tariff, now)[0]

    # -- schedules ---------------------------------------------------------------------------

    def run_schedules(self, now: float) -> None:
        self._refresh_devices()
        signal = self.signal(now)
        for stored in self.ctx.schedules.list():
            device = self.by_id.get(stored.device_id)
            if device is None or device.status != "active":
                continue
            try:
                self.run_schedule(device, stored, signal, now)
            except Exception:  # one bad schedule must not stop the others
                self._problem(f"schedule:{device.id}", "schedule of device %s failed",
                              device.id)
                log.debug("schedule failure", exc_info=True)

    def run_schedule(self, device: Device, stored, signal: Signal, now: float) -> Command:
        defn = stored.definition
        occ: Occurrence | None = stored.occurrence
        runtime = stored.last_plan or {}
        mode = defn.mode
        result: Plan | None = None
        if mode == "smart":
            t_now = int(now)
            try:
                if occ is None:
                    occ = new_occurrence(defn, t_now, self.tz)
                else:
                    occ = advance(occ, int(runtime.get("advanced_to", t_now)), t_now)
                if t_now >= occ.ready_by:
                    mode, occ = roll_over(defn, t_now, self.tz)
                    if mode != "smart":
                        self.ctx.schedules.set_mode(device.id, mode)
                        log.info("schedule of device %s completed; mode is now %s",
                                 device.id, mode)
            except ReadyByPassed:
                mode, occ = "off", None
                self.ctx.schedules.set_mode(device.id, "off")
        if mode == "smart" and occ is not None:
            result = plan(replace(defn, mode="smart"), occ, signal, int(now))
            occ = replace(occ, windows=result.windows)
            runtime = {"advanced_to": int(now), **explain(result, signal, int(now), self.tz)}
        else:
            runtime = {"advanced_to": int(now), "status": mode, "windows": []}
        self.ctx.schedules.save_runtime(device.id, occ, runtime)
        command = self.command_for(device, mode, result, now)
        self.send(device, command, stored.last_command)
        return command

    def command_for(self, device: Device, mode: str, result: Plan | None,
                    now: float) -> Command:
        if mode in ("on", "off"):
            return Command(mode)
        windows = [w for w in (result.windows if result else ()) if w.end > now]
        if not windows:
            return Command("off")
        current = windows[0]
        active = current.start <= now < current.end
        if adapter_for(device.type).runs_windows:
            if current.start - now >= TIMER_HORIZON_S:
                return Command("off")
            return Command("window", current.start, current.end)
        return Command("on" if active else "off")

    def send(self, device: Device, command: Command, last: dict[str, Any] | None) -> bool:
        """Publish `command` unless it is what the device was last told."""
        if last == command.to_json():
            return False
        for msg in adapter_for(device.type).command(device, command, self.tz):
            self.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
        self.sent_at[device.id] = self.clock()
        self.ctx.schedules.save_last_command(device.id, command.to_json())
        log.info("device %s: %s", device.id, command.to_json())
        return True
