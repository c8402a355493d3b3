"""Which MQTT messages are device traffic, so the worker routes them to the device service
only and never to meter-reading ingest.

Device → hub traffic (see hub/device/README.md):
- `<base>/…/describe`                     EmonESP announcing its node type
- `…/in/…`, `…/out/…`                     EmonESP commands (hub → device) and state reports
- `…/claim|override|schedule|limit|set`   OpenEVSE v4 control topics and their `/set`
- `openevse/announce/<id>`                OpenEVSE announcements
- `stat/<t>/<x>`, `tele/<t>/<x>`          Tasmota
"""

from __future__ import annotations

from hub.names import SIGNAL_TOPIC

CHANNELS = frozenset({"in", "out"})
CONTROL_KEYS = frozenset({"claim", "override", "schedule", "limit", "set"})


def subscriptions(base: str) -> list[str]:
    """What the device service subscribes to; `wants()` then narrows `<base>/#`."""
    return [f"{base}/#", "openevse/announce/+", "stat/+/+", "tele/+/+", SIGNAL_TOPIC]


def is_device_traffic(topic: str, base: str) -> bool:
    """True for messages that belong to devices whatever their payload (never readings)."""
    parts = topic.split("/")
    if parts[0] == base:
        keys = parts[2:]
        return bool(keys) and (keys[-1] == "describe" or keys[-1] in CONTROL_KEYS
                               or not CHANNELS.isdisjoint(keys))
    if parts[0] == "openevse":
        return len(parts) == 3 and parts[1] == "announce"
    return parts[0] in ("stat", "tele") and len(parts) == 3
