"""OpenEVSE WiFi v4 (ESP32) over its MQTT JSON API; base topic `<base>` (the docs advise
`emon/<name>`).

- on: `claim/set` {"state": "active", "auto_release": false}; off: the same with "disabled".
  The hub runs windows itself (claim at the start, disable at the end), so nothing depends on
  the EVSE's clock or time zone.
- state: retained `<base>/claim`, `<base>/override`, and `<base>/state` / `<base>/status`
  published every 30 s. A change of `override` is a person using the EVSE's app or button
  (`manual`). `openevse/announce/<id>` (retained, and its LWT) says connected/disconnected;
  the service handles it since it is outside the base topic.
- RAPI `$G*` queries are allowed on v4 but not needed: the retained topics are the state.
"""

from __future__ import annotations

import json
from typing import ClassVar
from zoneinfo import ZoneInfo

from hub.device.errors import DeviceMessageError

from . import Command, DeviceLike, Message, Report, json_object, text

# EVSE state numbers (RAPI $GS): 1 not connected, 2 connected, 3 charging, 254 sleeping,
# 255 disabled; 4..11 are faults.
CHARGING = 3


class OpenEvse:
    type: ClassVar[str] = "openevse"
    runs_windows: ClassVar[bool] = False

    def command(self, device: DeviceLike, cmd: Command, tz: ZoneInfo) -> list[Message]:
        state = "disabled" if cmd.action == "off" else "active"
        body = json.dumps({"state": state, "auto_release": False})
        return [Message(f"{device.base_topic}/claim/set", body)]

    def query(self, device: DeviceLike) -> list[Message]:
        return []  # state topics are retained and periodic

    def parse(self, device: DeviceLike, subtopic: str, payload: bytes) -> Report | None:
        if subtopic in ("claim", "override"):
            raw = text(payload, subtopic)
            if raw in ("", "{}"):
                return Report(present=True, fields={subtopic: None})
            doc = json_object(payload, subtopic)
            state = doc.get("state")
            if state not in (None, "active", "disabled"):
                raise DeviceMessageError(f"{subtopic} state must be active or disabled")
            mode = {"active": "on", "disabled": "off"}.get(state)
            return Report(mode=mode, manual=subtopic == "override" and mode is not None,
                          present=True, fields={subtopic: {"state": state}})
        if subtopic == "state":
            raw = text(payload, "state")
            if not raw.lstrip("-").isdigit():
                raise DeviceMessageError(f"state must be an EVSE state number, got {raw[:20]!r}")
            return Report(power=int(raw) == CHARGING, present=True,
                          fields={"evse_state": int(raw)})
        if subtopic == "status":
            raw = text(payload, "status")
            if raw not in ("active", "disabled"):
                raise DeviceMessageError("status must be active or disabled")
            return Report(present=True, fields={"status": raw})
        if subtopic == "":
            raw = text(payload, "presence")
            if raw in ("connected", "disconnected"):
                return Report(present=raw == "connected")
            return None
        if subtopic.endswith("/set") or subtopic.startswith("rapi/in"):
            return None  # our own commands, echoed
        return Report(present=True)


def parse_announce(payload: bytes) -> tuple[str, bool, str]:
    """`openevse/announce/<id>` → (base topic, connected, name)."""
    doc = json_object(payload, "openevse announce")
    base, state = doc.get("mqtt"), doc.get("state")
    if not isinstance(base, str) or not base or state not in ("connected", "disconnected"):
        raise DeviceMessageError("openevse announce needs mqtt (base topic) and state "
                                 "connected/disconnected")
    name = doc.get("name") if isinstance(doc.get("name"), str) else ""
    return base, state == "connected", name[:64]
