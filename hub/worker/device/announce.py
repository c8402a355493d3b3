"""Device announcements: a device that says it exists is found or created, and marked present.

- `<base>/…/<node>/describe` (EmonESP, payload = node type) adds or refreshes an EmonESP; a
  paired EmonESP (given `<base>/<account>`) announcing `<that>/<node>` takes that topic, and
  keeps its owner (whatever node type the pairing request named).
- A device created by an announcement belongs to the owner of the account it announced
  under (DeviceTable.owner_of), else to the MQTT user: a paired plug never changes household.
- `openevse/announce/<id>` adds an OpenEVSE; `tele/<t>/LWT` a Tasmota.
- A new device gets the feeds of its template. The table holds at most MAX_DEVICES devices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hub.device.adapters.emonesp import NODE_TYPES
from hub.device.adapters.openevse import parse_announce
from hub.device.adapters.registry import adapter_for
from hub.device.errors import DeviceError, DeviceMessageError
from hub.device.store import Device, DeviceStore, validate_topic
from hub.device.templates import DeviceTemplates
from hub.worker.device.table import DeviceTable

log = logging.getLogger("hub.worker.device")

MAX_DEVICES = 200  # announcements cannot grow the device table without bound


class Announcements:
    def __init__(self, devices: DeviceStore, templates: DeviceTemplates, table: DeviceTable,
                 owner_id: int, query: Callable[[Device], None],
                 clock: Callable[[], float], base: str = "emon") -> None:
        self.devices = devices
        self.templates = templates
        self.table = table
        self.owner_id = owner_id  # devices announced outside any device account: MQTT user
        self.base = base
        self.query = query
        self.clock = clock

    def describe(self, base_topic: str, payload: bytes) -> None:
        node_type = payload.decode("utf-8", "replace").strip()[:32]
        if node_type not in NODE_TYPES:
            raise DeviceMessageError(f"unknown EmonESP node type {node_type[:32]!r}; known: "
                                     f"{', '.join(NODE_TYPES)}")
        device = self.announced("emonesp", base_topic, node_type, base_topic.split("/")[-1])
        self.query(device)

    def openevse(self, payload: bytes) -> None:
        base, connected, name = parse_announce(payload)
        self.announced("openevse", base, "openevse", name or base.split("/")[-1], connected)

    def tasmota_lwt(self, t: str, payload: bytes) -> None:
        report = adapter_for("tasmota").parse(None, "tele/LWT", payload)
        device = self.announced("tasmota", t, "tasmota", t, bool(report and report.present))
        if report and report.present:
            self.query(device)

    def announced(self, type_: str, base_topic: str, node_type: str, name: str,
                  present: bool = True) -> Device:
        """Find or create the device for an announcement and mark it present."""
        validate_topic(base_topic)
        device = self.table.by_topic.get((type_, base_topic))
        if device is None:  # the web may have paired it since the last tick: look again
            self.table.refresh()
            device = self.table.by_topic.get((type_, base_topic))
        if device is None and type_ == "emonesp":
            device = self._claim_paired(base_topic, node_type)
        if device is None:
            device = self._create(type_, base_topic, node_type, name)
        elif node_type and device.node_type != node_type:
            device = self.devices.update(device.id, node_type=node_type)
        if device.status == "pairing":
            return device  # not yet fetched its credentials: wait
        self.devices.seen(device.id, present, self.clock())
        return device

    def _claim_paired(self, base_topic: str, node_type: str) -> Device | None:
        """A paired EmonESP was given `<base>/<account>`; it announces `<that>/<node>`."""
        parent = self.table.find(base_topic)
        if parent is None or parent[0].type != "emonesp" or not parent[1] \
                or "/" in parent[1]:
            return None
        device = parent[0]
        unclaimed_account = bool(device.mqtt_username) and \
            device.base_topic.split("/")[-1] == device.mqtt_username
        if unclaimed_account or not device.node_type:
            device = self.devices.update(parent[0].id, base_topic=base_topic,
                                         node_type=node_type, name=parent[1])
            self.table.refresh(force=True)
            return device
        return None

    def _create(self, type_: str, base_topic: str, node_type: str, name: str) -> Device:
        if len(self.table.by_id) >= MAX_DEVICES:
            raise DeviceError(f"device limit of {MAX_DEVICES} reached; {base_topic!r} "
                              "ignored (remove unused devices)")
        owner = self.table.owner_of(base_topic, self.base)
        device = self.devices.create(self.owner_id if owner is None else owner,
                                     name or base_topic[-64:], type_, base_topic,
                                     node_type=node_type)
        self.table.refresh(force=True)
        log.info("new %s device %s (%s) on %s, user %s", type_, device.id, node_type or "-",
                 base_topic, device.user_id)
        try:
            self.templates.apply(device)
        except Exception as exc:  # a template problem must not lose the device
            log.warning("template for device %s not applied: %s", device.id, exc)
        return device
