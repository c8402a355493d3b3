"""Devices: what the hub controls, their broker accounts and their live state.

- A device is a row of `devices`: owner, name, `type` (the adapter: emonesp, openevse,
  tasmota), `node_type` (what the firmware says it is, e.g. smartplug), `base_topic` (the
  root of its MQTT topics; for Tasmota its `%topic%`), its broker account and its address.
- A device paired through the auth-request flow starts as `status="pairing"` with
  `pairing_expires`; it becomes "active" when it fetches its credentials, and is removed with
  its account when the window passes unused.
- Live state (last report, presence, last seen) is a Redis hash `device:<id>` so frequent
  reports never touch MariaDB.
- Removing a device revokes its broker account first (the broker disconnects it at once).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import pymysql
import redis

from hub.db import Database
from hub.device.dynsec import DynSec
from hub.device.errors import DeviceError, UnknownDevice, UnknownDeviceType
from hub.names import RedisKeys

# Opens an admin connection to the broker (hub.context passes DynSec.from_config).
BrokerAdmin = Callable[[], AbstractContextManager[DynSec]]

log = logging.getLogger(__name__)

TYPES = ("emonesp", "openevse", "tasmota")
NAME_RE = re.compile(r"^[\w .:-]{1,64}$")
NAME_STRIP_RE = re.compile(r"[^\w .:-]")
TOPIC_RE = re.compile(r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+){0,5}$")  # no wildcards, no $
STATUSES = ("active", "pairing")


class InvalidDevice(DeviceError):
    """A device field (name, type, topic) is not acceptable."""


@dataclass(frozen=True)
class Device:
    id: int
    user_id: int
    name: str
    type: str
    node_type: str
    base_topic: str
    mqtt_username: str | None
    ip: str
    status: str
    pairing_expires: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(row: dict[str, Any]) -> Device:
    return Device(row["id"], row["user_id"], row["name"], row["type"], row["node_type"],
                  row["base_topic"], row["mqtt_username"], row["ip"], row["status"],
                  row["pairing_expires"])


def validate_topic(topic: str) -> str:
    if not isinstance(topic, str) or len(topic) > 190 or not TOPIC_RE.match(topic):
        raise InvalidDevice(f"device topic {topic!r} must be 1-6 levels of letters, digits, "
                            "'_', '-', '.', ':' with no wildcards")
    return topic


def name_from(text: str, fallback: str) -> str:
    """A valid device name made from what a device calls itself (characters outside the
    name set dropped), or `fallback` when nothing is left."""
    return NAME_STRIP_RE.sub("", text).strip()[:64] or fallback


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidDevice(f"device name {name!r} must be 1-64 letters, digits, spaces, "
                            "'_', '-', '.', ':'")
    return name


@dataclass(eq=False)
class DeviceStore:
    db: Database
    redis: redis.Redis
    keys: RedisKeys
    broker_admin: BrokerAdmin

    # -- rows --------------------------------------------------------------------------------

    def create(self, user_id: int, name: str, type: str, base_topic: str, *,
               node_type: str = "", mqtt_username: str | None = None, ip: str = "",
               status: str = "active", pairing_expires: int | None = None) -> Device:
        if type not in TYPES:
            raise UnknownDeviceType(f"device type {type!r} is not one of {', '.join(TYPES)}")
        if status not in STATUSES:
            raise InvalidDevice(f"status must be one of {STATUSES}")
        validate_name(name)
        validate_topic(base_topic)
        try:
            with self.db.cursor() as cur:
                cur.execute(
                    "INSERT INTO devices (user_id, name, type, node_type, base_topic,"
                    " mqtt_username, ip, status, pairing_expires)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (user_id, name, type, node_type[:32], base_topic, mqtt_username, ip[:45],
                     status, pairing_expires))
                device_id = cur.lastrowid
        except pymysql.err.IntegrityError as exc:
            raise InvalidDevice(f"a device already uses topic {base_topic!r} or account "
                                f"{mqtt_username!r}") from exc
        self.changed()
        return self.get(device_id)

    def get(self, device_id: int) -> Device:
        return _row(self.db.one("SELECT * FROM devices WHERE id = %s", (device_id,),
                                UnknownDevice(f"no device with id {device_id}")))

    def list(self, user_id: int | None = None, status: str | None = None) -> list[Device]:
        sql, args = "SELECT * FROM devices WHERE 1=1", []
        if user_id is not None:
            sql, args = sql + " AND user_id = %s", [*args, user_id]
        if status is not None:
            sql, args = sql + " AND status = %s", [*args, status]
        with self.db.cursor() as cur:
            cur.execute(sql + " ORDER BY id", args)
            return [_row(r) for r in cur.fetchall()]

    def by_topic(self, base_topic: str) -> Device | None:
        with self.db.cursor() as cur:
            cur.execute("SELECT * FROM devices WHERE base_topic = %s", (base_topic,))
            row = cur.fetchone()
        return _row(row) if row else None

    def by_username(self, username: str) -> Device | None:
        with self.db.cursor() as cur:
            cur.execute("SELECT * FROM devices WHERE mqtt_username = %s", (username,))
            row = cur.fetchone()
        return _row(row) if row else None

    def update(self, device_id: int, **fields: Any) -> Device:
        allowed = {"name", "node_type", "base_topic", "ip", "status", "pairing_expires", "type"}
        if not fields or not set(fields) <= allowed:
            raise InvalidDevice(f"only {sorted(allowed)} can be changed")
        if "name" in fields:
            validate_name(fields["name"])
        if "base_topic" in fields:
            validate_topic(fields["base_topic"])
        if "type" in fields and fields["type"] not in TYPES:
            raise UnknownDeviceType(f"device type {fields['type']!r} is not known")
        sets = ", ".join(f"{name} = %s" for name in fields)
        try:
            with self.db.cursor() as cur:
                # bandit B608: column names are fixed.
                cur.execute(f"UPDATE devices SET {sets} WHERE id = %s",  # nosec B608
                            (*fields.values(), device_id))
        except pymysql.err.IntegrityError as exc:
            raise InvalidDevice(f"another device already has {fields}") from exc
        self.changed()
        return self.get(device_id)

    def remove(self, device_id: int) -> Device:
        """Revoke the broker account (disconnecting the device), then forget the device."""
        device = self.get(device_id)
        if device.mqtt_username:
            with self.broker_admin() as admin:
                admin.delete_device_account(device.mqtt_username)
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM devices WHERE id = %s", (device_id,))
        self.redis.delete(self.keys.device(device_id))
        self.changed()
        log.info("device %s (%s) removed; broker account %s revoked", device.id, device.name,
                 device.mqtt_username or "(none)")
        return device

    # -- change notification -----------------------------------------------------------------

    def changed(self) -> None:
        """Tell the worker's device service to reload its topic map."""
        self.redis.incr(self.keys.devices_version)

    def version(self) -> int:
        return int(self.redis.get(self.keys.devices_version) or 0)

    # -- live state --------------------------------------------------------------------------

    def set_state(self, device_id: int, **fields: Any) -> None:
        key = self.keys.device(device_id)
        self.redis.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})

    def state(self, device_id: int) -> dict[str, Any]:
        raw = self.redis.hgetall(self.keys.device(device_id))
        out = {}
        for k, v in raw.items():
            try:
                out[k.decode()] = json.loads(v)
            except ValueError:
                continue
        return out

    def seen(self, device_id: int, present: bool = True, now: float | None = None) -> None:
        self.set_state(device_id, present=present, last_seen=int(now or time.time()))

    def describe(self, device: Device) -> dict[str, Any]:
        """The device as the API shows it: the row plus its live state."""
        return {**device.to_json(), "state": self.state(device.id)}
