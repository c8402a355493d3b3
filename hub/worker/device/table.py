"""The worker's in-memory map of devices by id and by topic, reloaded when the device table
changes (the device store bumps `devices:version` on every change, from any process)."""

from __future__ import annotations

from hub.device.store import Device, DeviceStore


class DeviceTable:
    def __init__(self, devices: DeviceStore) -> None:
        self.devices = devices
        self.by_id: dict[int, Device] = {}
        self.by_topic: dict[tuple[str, str], Device] = {}
        self.version: int | None = None

    def refresh(self, force: bool = False) -> None:
        version = self.devices.version()
        if not force and version == self.version:
            return
        self.version = version
        devices = self.devices.list()
        self.by_id = {d.id: d for d in devices}
        self.by_topic = {(d.type, d.base_topic): d for d in devices}

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
