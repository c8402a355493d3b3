"""Device adapters: one module per firmware, one interface.

An adapter is pure protocol: it turns a hub `Command` (on, off, run a window) into the MQTT
messages the firmware understands, names the messages that ask for its state, and turns what
the device publishes into a `Report`. It never talks to the broker itself, so the worker's one
client does the I/O and tests can drive the same code against a real broker.

Adapters with `runs_windows = True` (EmonESP) take a window and switch by themselves; for the
others the device service sends on/off at the window's edges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from hub.device.errors import DeviceMessageError

MAX_PAYLOAD = 4096  # device state messages are small; anything bigger is refused


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True)
class Command:
    """What the hub wants: "on", "off", or "window" from `start` to `end` (unix seconds)."""

    action: str
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ("on", "off", "window"):
            raise ValueError(f"command action must be on, off or window, not {self.action!r}")
        if self.action == "window" and (self.start is None or self.end is None
                                        or self.end <= self.start):
            raise ValueError("a window command needs start < end")

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Command:
        return cls(obj["action"], obj.get("start"), obj.get("end"))


@dataclass
class Report:
    """What a device said. None means "not said in this message".

    `power`: the load is on; `mode`: "on", "off" or "timer" (the device's own mode);
    `manual`: the change came from a person at the device (button, local web page), so the
    hub's view follows it; `present`: online/offline.
    """

    power: bool | None = None
    mode: str | None = None
    manual: bool = False
    present: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class DeviceLike(Protocol):
    base_topic: str
    node_type: str


class Adapter(Protocol):
    type: ClassVar[str]
    runs_windows: ClassVar[bool]

    def command(self, device: DeviceLike, cmd: Command, tz: ZoneInfo) -> list[Message]: ...

    def query(self, device: DeviceLike) -> list[Message]: ...

    def parse(self, device: DeviceLike, subtopic: str, payload: bytes) -> Report | None: ...


def text(payload: bytes, what: str) -> str:
    if len(payload) > MAX_PAYLOAD:
        raise DeviceMessageError(f"{what}: {len(payload)} bytes is over {MAX_PAYLOAD}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DeviceMessageError(f"{what}: payload is not UTF-8 text") from None


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    raw = text(payload, what)
    try:
        doc = json.loads(raw)
    except ValueError:
        raise DeviceMessageError(f"{what}: not JSON: {raw[:60]!r}") from None
    if not isinstance(doc, dict):
        raise DeviceMessageError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc
