"""The device service of `hub worker`: routes device traffic to its concern and runs the
schedules. The concerns live next to it, one module each:

| module        | concern |
|---------------|---------|
| `topics.py`   | which messages are device traffic (never readings) |
| `table.py`    | the devices by id and topic, reloaded when the device table changes |
| `flood.py`    | per-device flood control, rate-limited problem logs |
| `announce.py` | describe / announce / LWT → find or create the device |
| `reports.py`  | state reports → live state, manual switching at the device |
| `schedules.py`| plan every schedule and send only changed commands |
| `hub/device/planning.py` | the signal (last demand-shaper profile or off-peak tariff) |

The worker gives this service device traffic (`owns`) plus the signal topic and messages
under a known device's topic (`wants`); meter readings elsewhere never reach it. Every message
is hostile input: a bad one is logged (rate-limited) and dropped.

Schedules are run every minute, at once when a schedule changes, and when a new profile
arrives. Pairing grants expire here, and discovery (UDP broadcast, mDNS) is ticked here when
configured.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from hub.context import HubContext
from hub.device.adapters.registry import adapter_for
from hub.device.errors import DeviceError, DeviceMessageError
from hub.device.planning import PLAN_EVERY_S
from hub.device.store import Device
from hub.names import SIGNAL_TOPIC
from hub.scheduler.errors import SchedulerError
from hub.worker.device import topics
from hub.worker.device.announce import Announcements
from hub.worker.device.discovery import Broadcaster, Mdns
from hub.worker.device.flood import FloodGuard, ProblemLog
from hub.worker.device.reports import Reports
from hub.worker.device.schedules import Publish, ScheduleRunner
from hub.worker.device.table import DeviceTable

# Signals are numpy arrays (~12 MB of RSS to import): the worker loads them when a smart
# schedule is planned or a demand-shaper profile arrives, not to run its MQTT loop (issue 12).
if TYPE_CHECKING:
    from hub.scheduler.signal import ProfileSource, Signal

log = logging.getLogger("hub.worker.device")

STATE_POLL_S = 300
PAIRING_CHECK_S = 5
LINK_EVERY_S = 300  # template inputs appear with the first readings: look for them this often


class DeviceService:
    def __init__(self, ctx: HubContext, publish: Publish,
                 clock: Callable[[], float] = time.time) -> None:
        config = ctx.config
        self.ctx = ctx
        self.publish = publish
        self.clock = clock
        self.base = config.mqtt_base_topic
        self.problem = ProblemLog()
        self.flood = FloodGuard(self.problem)
        self.table = DeviceTable(ctx.devices)
        self.runner = ScheduleRunner(ctx.schedules, self.table, publish, config.timezone,
                                     self.problem, clock)
        self.announcements = Announcements(ctx.devices, ctx.templates, self.table,
                                           config.mqtt_user_id, self._query, clock,
                                           base=self.base)
        self.reports = Reports(ctx.devices, ctx.schedules, ctx.pairing, self.runner.sent_at,
                               self._replan, clock)
        self.signals = ctx.signal
        self.schedules_version: int | None = None
        self.replan = True
        self.next_plan = self.next_pairing_check = self.next_link = 0.0
        self.last_poll: dict[int, float] = {}
        self.broadcaster = Broadcaster() if config.broadcast_enabled else None
        self.mdns = Mdns(config.web_port, config.mqtt_port) if config.mdns_enabled else None

    # -- worker interface --------------------------------------------------------------------

    def topics(self) -> list[str]:
        return topics.subscriptions(self.base)

    def owns(self, topic: str) -> bool:
        """Device traffic: given to this service only."""
        return topics.is_device_traffic(topic, self.base)

    def wants(self, topic: str) -> bool:
        """Of what the subscriptions match: device traffic, the signal, a known device's
        topic. The device table changes at run time, so the worker asks per message."""
        if topic == SIGNAL_TOPIC or self.owns(topic):
            return True
        self.table.loaded()
        return self.table.find(topic) is not None

    def on_connect(self) -> None:
        self.replan = True

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._route(topic, payload)
        except DeviceError as exc:
            self.problem(topic, "dropped a device message on %r: %s", topic[:80], exc)

    def tick(self, now: float) -> None:
        self.table.refresh()
        if now >= self.next_pairing_check:
            self.next_pairing_check = now + PAIRING_CHECK_S
            self.ctx.pairing.expire(now)
            if self.broadcaster is not None:
                self.broadcaster.tick(now, self.ctx.pairing.window_open())
        if self.mdns is not None:
            self.mdns.tick(now)
        version = self.ctx.schedules.version()
        if version != self.schedules_version:
            self.schedules_version = version
            self.replan = True
        if self.replan or now >= self.next_plan:
            self.replan = False
            self.next_plan = (now // PLAN_EVERY_S + 1) * PLAN_EVERY_S
            self.runner.run_all(lambda: self.signal(now), now)
        self._poll_states(now)
        if now >= self.next_link:
            self.next_link = now + LINK_EVERY_S
            self.link_template_inputs()

    def stop(self) -> None:
        if self.mdns is not None:
            self.mdns.stop()

    @property
    def dropped(self) -> dict[str, int]:
        return self.flood.dropped

    # -- routing -----------------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message or a request from the hub itself
        self.table.loaded()
        if topic == SIGNAL_TOPIC:
            self._on_profile(payload)
            return
        parts = topic.split("/")
        if parts[0] == "openevse" and len(parts) == 3 and parts[1] == "announce":
            if self.flood.allow(topic):
                self.announcements.openevse(payload)
            return
        if parts[0] in ("stat", "tele") and len(parts) == 3:
            self._on_tasmota(parts[0], parts[1], parts[2], payload)
            return
        if parts[-1] == "describe" and len(parts) >= 3:
            base_topic = "/".join(parts[:-1])
            if self.flood.allow(base_topic):
                self.announcements.describe(base_topic, payload)
            return
        found = self.table.find(topic)
        if found is None:
            return  # traffic of a device we do not know
        device, subtopic = found
        if self.flood.allow(device.base_topic):
            self.reports.handle(device, subtopic, payload)

    def _on_tasmota(self, prefix: str, t: str, leaf: str, payload: bytes) -> None:
        if not self.flood.allow(f"tasmota:{t}"):
            return
        device = self.table.by_topic.get(("tasmota", t))
        if device is None:
            if leaf == "LWT":
                self.announcements.tasmota_lwt(t, payload)
            return  # other traffic of a device we have not seen announce itself
        self.reports.handle(device, f"{prefix}/{leaf}", payload)

    def _query(self, device: Device) -> None:
        self.last_poll[device.id] = self.clock()
        for msg in adapter_for(device.type).query(device):
            self.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)

    def _poll_states(self, now: float) -> None:
        for device in self.table.by_id.values():
            if device.status == "active" and \
                    now - self.last_poll.get(device.id, now - STATE_POLL_S / 2) >= STATE_POLL_S:
                self._query(device)

    def _replan(self) -> None:
        self.replan = True

    def link_template_inputs(self) -> None:
        for device in self.table.by_id.values():
            if device.status != "active":
                continue
            try:
                self.ctx.templates.link_inputs(device)
            except Exception as exc:  # a template problem must not stop the service
                self.problem(f"link:{device.id}", "template inputs of device %s: %s",
                             device.id, exc)

    # -- signal ------------------------------------------------------------------------------

    @cached_property
    def profile(self) -> ProfileSource:
        """The stored demand-shaper profile, read when a signal is first needed."""
        try:
            return self.signals.load()
        except Exception as exc:  # Redis not up yet: go on, the next profile will do
            log.warning("cannot read the stored demand-shaper profile: %s", exc)
            from hub.scheduler.signal import ProfileSource

            return ProfileSource()

    def _on_profile(self, payload: bytes) -> None:
        try:
            self.profile.update(json.loads(payload))
        except (ValueError, SchedulerError) as exc:
            raise DeviceMessageError(f"demand-shaper profile refused, previous one kept: "
                                     f"{exc}") from exc
        self.signals.save(payload)
        self.replan = True
        log.info("new demand-shaper profile; re-planning every schedule")

    def signal(self, now: float) -> Signal:
        return self.signals.current(self.profile, now)[0]
