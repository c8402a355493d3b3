"""The adapter of each device type."""

from __future__ import annotations

from hub.device.adapters import Adapter
from hub.device.adapters.emonesp import EmonEsp
from hub.device.adapters.openevse import OpenEvse
from hub.device.adapters.tasmota import Tasmota
from hub.device.errors import UnknownDeviceType

ADAPTERS: dict[str, type] = {"emonesp": EmonEsp, "openevse": OpenEvse, "tasmota": Tasmota}


def adapter_for(device_type: str) -> Adapter:
    try:
        return ADAPTERS[device_type]()
    except KeyError:
        raise UnknownDeviceType(f"no adapter for device type {device_type!r}") from None
