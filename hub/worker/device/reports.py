"""Device reports: what a known device publishes becomes its live state in Redis.

A manual change at the device (EmonESP button, OpenEVSE override, a Tasmota POWER report that
is not the hub's last command) wins: the schedule's mode follows it, and the hub records it as
its own last command so it does not undo it. Only real changes of power, mode or presence are
published as `device_state` events for the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hub.device.adapters import Command, Report
from hub.device.adapters.registry import adapter_for
from hub.device.pairing import Pairing
from hub.device.schedule import ScheduleNotFound, ScheduleStore
from hub.device.store import Device, DeviceStore

log = logging.getLogger("hub.worker.device")

COMMAND_GRACE_S = 10  # a device's report this soon after a command is its answer, not a button


class Reports:
    def __init__(self, devices: DeviceStore, schedules: ScheduleStore, pairing: Pairing,
                 sent_at: dict[int, float], on_manual: Callable[[], None],
                 clock: Callable[[], float]) -> None:
        self.devices = devices
        self.schedules = schedules
        self.pairing = pairing
        self.sent_at = sent_at  # device id → when the hub last commanded it
        self.on_manual = on_manual
        self.clock = clock

    def handle(self, device: Device, subtopic: str, payload: bytes) -> None:
        if device.status == "pairing":
            return
        report = adapter_for(device.type).parse(device, subtopic, payload)
        if report is None:
            return
        now = self.clock()
        state: dict[str, Any] = dict(report.fields)
        for name in ("power", "mode", "present"):
            if getattr(report, name) is not None:
                state[name] = getattr(report, name)
        state["last_seen"] = int(now)
        before = self.devices.state(device.id)
        self.devices.set_state(device.id, **state)
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
        try:
            return self.schedules.get(device_id).last_command
        except ScheduleNotFound:
            return None

    def _follow_device(self, device: Device, mode: str) -> None:
        """A person switched the device: the hub's view (and the schedule's mode) follows."""
        try:
            stored = self.schedules.get(device.id)
        except ScheduleNotFound:
            return
        if stored.definition.mode != mode:
            self.schedules.set_mode(device.id, mode)
            log.info("device %s was switched %s at the device; its schedule follows", device.id,
                     mode)
        self.schedules.save_last_command(device.id, Command(mode).to_json())
        self.on_manual()
