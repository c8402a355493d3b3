"""Device templates: the feeds a device type gets when it first appears (emoncms'
`Modules/device/data/*.json`, trimmed to what our devices report).

Templates are JSON files in `hub/device/templates/<node_type>.json`:
`{"name", "category", "feeds": [{"name", "interval", "unit"}],
  "inputs": [{"name", "feed", "description"}]}`.

- Feeds are created for the device's owner with the device name as tag, through the feed store,
  when the device first appears; existing ones are kept.
- Inputs only exist once readings arrive (the ingest service creates them), so the device
  service sweeps now and then: an input the template names, of the device's node, gets a
  `log_to_feed` process into its template feed, once (remembered in Redis, so a process list
  the household later changes is left alone). The input of reading `emon/<node>/<key>` is
  (<node>, <key>); below a deeper base topic `emon/<node>/<sub>` it is (<node>, <sub>_<key>),
  as the ingest service names them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from hub.device.store import Device
from hub.feed.store import FeedExists, FeedStore
from hub.input.store import InputStore
from hub.names import RedisKeys

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).with_name("templates")


def templates() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(TEMPLATE_DIR.glob("*.json"))}


def template_for(device) -> dict[str, Any] | None:
    found = templates()
    return found.get(device.node_type) or found.get(device.type)


@dataclass(eq=False)
class DeviceTemplates:
    """Applies templates to devices: feeds at first sight, input links once readings come."""

    feeds: FeedStore
    inputs: InputStore
    redis: redis.Redis
    keys: RedisKeys
    mqtt_base_topic: str

    def apply(self, device: Device) -> list[int]:
        """Create the template's feeds for `device`; returns the ids of feeds created."""
        template = template_for(device)
        if template is None:
            return []
        tag = device.name[:64]
        made = []
        for feed in template.get("feeds", []):
            try:
                created = self.feeds.create(device.user_id, feed["name"], tag=tag,
                                            interval=int(feed.get("interval", 10)),
                                            unit=feed.get("unit", ""))
            except FeedExists:
                continue
            made.append(created.id)
        if made:
            log.info("device %s: template %s created feeds %s", device.id, template["name"],
                     made)
        return made

    def input_address(self, device: Device) -> tuple[str, str] | None:
        """(node, name prefix) of the device's inputs, or None if its readings are not
        ingested."""
        parts = device.base_topic.split("/")
        if device.type == "tasmota" or len(parts) < 2 or parts[0] != self.mqtt_base_topic:
            return None
        return parts[1], "".join(f"{p}_" for p in parts[2:])

    def link_inputs(self, device: Device) -> list[int]:
        """Give the device's template inputs their log_to_feed process; returns the inputs
        linked."""
        template = template_for(device)
        address = self.input_address(device)
        if template is None or not template.get("inputs") or address is None:
            return []
        node, prefix = address
        wanted = {prefix + spec["name"]: spec for spec in template["inputs"]}
        done_key = self.keys.device_linked(device.id)
        done = {int(i) for i in self.redis.smembers(done_key)}
        linked = []
        for row in self.inputs.list(device.user_id):
            spec = wanted.get(row["name"]) if row["nodeid"] == node else None
            if spec is None or row["id"] in done:
                continue
            feed = self.feeds.find(device.user_id, spec["feed"], device.name[:64])
            if feed is None:
                continue
            if not row["processList"]:
                self.inputs.set_processlist(device.user_id, row["id"],
                                            [{"fn": "log_to_feed", "args": [feed.id]}])
                if spec.get("description") and not row["description"]:
                    self.inputs.set_fields(device.user_id, row["id"],
                                           {"description": spec["description"]})
                linked.append(row["id"])
            self.redis.sadd(done_key, row["id"])
        if linked:
            log.info("device %s: inputs %s now log to their template feeds", device.id, linked)
        return linked
