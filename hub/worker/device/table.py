"""The worker's in-memory map of devices by id, by topic and by broker account, reloaded when
the device table changes (the device store bumps `devices:version` on every change, from any
process).

Ownership of MQTT traffic: the broker lets a device's account publish only under its own
topic (`<base>/<account>/#`, see hub/device/dynsec.py), so a topic says whose it is. Traffic
under a known device's topic, or under a device account's topic, belongs to that device's
owner (`owner_of`); anything else to the hub's MQTT user (setting `mqtt_user_id`)."""

from __future__ import annotations

from hub.device.store import Device, DeviceStore


class DeviceTable:
    def __init__(self, devices: DeviceStore) -> None:
        self.devices = devices
        self.by_id: dict[int, Device] = {}
        self.by_topic: dict[tuple[str, str], Device] = {}
        self.by_account: dict[str, Device] = {}
        self.version: int | None = None

    def refresh(self, force: bool = False) -> None:
        version = self.devices.version()
        if not force and version == self.version:
            return
        self.version = version
        devices = self.devices.list()
        self.by_id = {d.id: d for d in devices}
        self.by_topic = {(d.type, d.base_topic): d for d in devices}
        self.by_account = {d.mqtt_username: d for d in devices if d.mqtt_username}

    def loaded(self) -> None:
        """Load once if never loaded (messages can arrive before the first tick)."""
        if self.version is None:
            self.refresh()

    def find(self, topic: str) -> tuple[Device, str] | None:
        """The device whose base topic is the longest prefix of `topic`, and the rest."""
        parts = topic.split("/")
        for n in range(len(parts), 0, -1):
            prefix = "/".join(parts[:n])
            for kind in ("emonesp", "openevse"):
                device = self.by_topic.get((kind, prefix))
                if device is not None:
                    return device, "/".join(parts[n:])
        return None

    def owner_of(self, topic: str, base: str) -> int | None:
        """The user whose device publishes on `topic`: the device whose topic holds it, or
        the device whose broker account `<base>/<account>/…` it is under; None if neither."""
        found = self.find(topic)
        if found is not None:
            return found[0].user_id
        parts = topic.split("/")
        if len(parts) >= 2 and parts[0] == base:
            device = self.by_account.get(parts[1])
            if device is not None:
                return device.user_id
        return None
