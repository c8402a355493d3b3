"""Device templates: the feeds a device type gets when it first appears (emoncms'
`Modules/device/data/*.json`, trimmed to what our devices report).

Templates are JSON files in `hub/devices/templates/<node_type>.json`:
`{"name", "category", "feeds": [{"name", "interval", "unit"}]}`. Feeds are created for the
device's owner with the device name as tag, through `ctx.feeds`; existing ones are kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).with_name("templates")


def templates() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(TEMPLATE_DIR.glob("*.json"))}


def template_for(device) -> dict[str, Any] | None:
    found = templates()
    return found.get(device.node_type) or found.get(device.type)


def apply_template(ctx, device) -> list[int]:
    """Create the template's feeds for `device`; returns the ids of feeds created."""
    template = template_for(device)
    if template is None:
        return []
    from hub.models.feeds import FeedExists

    tag = device.name[:64]
    made = []
    for feed in template.get("feeds", []):
        try:
            created = ctx.feeds.create(device.user_id, feed["name"], tag=tag,
                                       interval=int(feed.get("interval", 10)),
                                       unit=feed.get("unit", ""))
        except FeedExists:
            continue
        made.append(created.id)
    if made:
        log.info("device %s: template %s created feeds %s", device.id, template["name"], made)
    return made
