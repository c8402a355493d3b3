"""Tasmota (FullTopic `%prefix%/%topic%/`; the device's `base_topic` is its `%topic%`).

- on/off: `cmnd/<t>/POWER` ON|OFF; the hub runs windows itself (sends ON and OFF at the edges).
- state: `cmnd/<t>/POWER` (empty) → `stat/<t>/RESULT` {"POWER": "ON"} and `stat/<t>/POWER`;
  `tele/<t>/STATE` {"POWER": ..., ...} every TelePeriod; `tele/<t>/LWT` Online|Offline
  (retained, the broker publishes Offline when the device drops).
- A `stat/<t>/POWER` that differs from the hub's last command is a button press (`manual`);
  the service makes that call because only it knows the last command.
"""

from __future__ import annotations

from typing import ClassVar
from zoneinfo import ZoneInfo

from hub.device.errors import DeviceMessageError

from . import Command, DeviceLike, Message, Report, json_object, text

PREFIXES = ("cmnd", "stat", "tele")
POWER = {"ON": True, "OFF": False, "1": True, "0": False}


def _power(value: object, what: str) -> bool:
    if not isinstance(value, str | int) or str(value).upper() not in POWER:
        raise DeviceMessageError(f"{what}: POWER must be ON or OFF, got {str(value)[:20]!r}")
    return POWER[str(value).upper()]


class Tasmota:
    type: ClassVar[str] = "tasmota"
    runs_windows: ClassVar[bool] = False

    def command(self, device: DeviceLike, cmd: Command, tz: ZoneInfo) -> list[Message]:
        return [Message(f"cmnd/{device.base_topic}/POWER", "OFF" if cmd.action == "off" else "ON")]

    def query(self, device: DeviceLike) -> list[Message]:
        return [Message(f"cmnd/{device.base_topic}/POWER", "")]

    def parse(self, device: DeviceLike, subtopic: str, payload: bytes) -> Report | None:
        """`subtopic` is "<prefix>/<rest>", e.g. "stat/RESULT"."""
        if subtopic == "tele/LWT":
            raw = text(payload, "LWT")
            if raw not in ("Online", "Offline"):
                raise DeviceMessageError("LWT must be Online or Offline")
            return Report(present=raw == "Online")
        if subtopic in ("stat/RESULT", "tele/STATE"):
            doc = json_object(payload, subtopic)
            if "POWER" not in doc:
                return Report(present=True)
            power = _power(doc["POWER"], subtopic)
            return Report(power=power, mode="on" if power else "off", present=True,
                          fields={"power": power})
        if subtopic == "stat/POWER":
            power = _power(text(payload, "stat/POWER"), "stat/POWER")
            return Report(power=power, mode="on" if power else "off", present=True,
                          fields={"power": power})
        if subtopic.startswith("cmnd/"):
            return None
        return Report(present=True)
