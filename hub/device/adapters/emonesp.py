"""EmonESP smart plug / Wi-Fi relay (EmonESP `src/mqtt.cpp`; Demand Shaper `emonesp.php`).

Topics under the device's `<base>` = `<basetopic>/<node>`:
- hub → device: `in/ctrlmode` On|Off|Timer; `in/timer` "HHMM HHMM HHMM HHMM" in UTC (the
  firmware's clock), second pair unused ("0000 0000"); `in/state` (empty) asks for a report.
- device → hub: `out/state` JSON {ip, ctrlmode, timer "s1 e1 s2 e2" unpadded, vout};
  `out/ctrlmode` On|Off on a button press or a local web change (so `manual`); `describe`.

A window is sent as the timer, then `Timer` mode: the plug switches itself even if the hub
goes away. The timer repeats daily, so the service replaces it (or sends Off) when the window
is over. A window the timer cannot express (24 h or more) is sent as On; the service sends Off
at its end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from hub.device.errors import DeviceMessageError

from . import Command, DeviceLike, Message, Report, json_object, text

MODES = {"on": "on", "off": "off", "timer": "timer", "1": "on", "0": "off", "2": "timer"}
NODE_TYPES = ("smartplug", "wifirelay", "hpmon", "espwifi", "emonesp")


def hhmm_utc(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H%M")


def parse_timer(value: str) -> list[str]:
    """"330 500 0 0" → ["03:30", "05:00", "00:00", "00:00"] (UTC)."""
    parts = value.split()
    if len(parts) not in (2, 4, 5):
        raise DeviceMessageError(f"timer {value[:40]!r} must be 2 or 4 HHMM numbers")
    out = []
    for part in parts[:4]:
        if not part.isdigit() or int(part) % 100 > 59 or int(part) // 100 > 23:
            raise DeviceMessageError(f"timer value {part[:8]!r} is not HHMM")
        out.append(f"{int(part) // 100:02d}:{int(part) % 100:02d}")
    return out


class EmonEsp:
    type: ClassVar[str] = "emonesp"
    runs_windows: ClassVar[bool] = True

    def command(self, device: DeviceLike, cmd: Command, tz: ZoneInfo) -> list[Message]:
        base = device.base_topic
        if cmd.action == "window" and cmd.end - cmd.start < 86_400 - 60:
            timer = f"{hhmm_utc(cmd.start)} {hhmm_utc(cmd.end)} 0000 0000"
            return [Message(f"{base}/in/timer", timer), Message(f"{base}/in/ctrlmode", "Timer")]
        word = "Off" if cmd.action == "off" else "On"
        return [Message(f"{base}/in/ctrlmode", word)]

    def query(self, device: DeviceLike) -> list[Message]:
        return [Message(f"{device.base_topic}/in/state", "")]

    def parse(self, device: DeviceLike, subtopic: str, payload: bytes) -> Report | None:
        if subtopic == "out/ctrlmode":
            mode = MODES.get(text(payload, "out/ctrlmode").lower())
            if mode is None:
                raise DeviceMessageError("out/ctrlmode must be On, Off or Timer")
            return Report(power={"on": True, "off": False}.get(mode), mode=mode, manual=True,
                          present=True)
        if subtopic == "out/state":
            doc = json_object(payload, "out/state")
            mode = MODES.get(str(doc.get("ctrlmode", "")).lower())
            if mode is None:
                raise DeviceMessageError("out/state needs ctrlmode On, Off or Timer")
            fields = {"ctrlmode": mode}
            if "timer" in doc:
                fields["timer_utc"] = parse_timer(str(doc["timer"]))
            if isinstance(doc.get("ip"), str):
                fields["ip"] = doc["ip"][:45]
            return Report(power={"on": True, "off": False}.get(mode), mode=mode,
                          present=True, fields=fields)
        if subtopic == "out/timer":
            return Report(present=True, fields={"timer_utc": parse_timer(
                text(payload, "out/timer"))})
        if subtopic.startswith("in/"):
            return None  # our own commands, echoed by the broker
        return Report(present=True)  # telemetry: the device is alive
