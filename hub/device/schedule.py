"""Schedules: one per device, what the household set plus the runtime state the worker keeps.

The definition (ready-by local time, period, interruptible, repeat weekdays or a one-off
date, mode smart/on/off, on-completion) is validated by `hub.scheduler.plan` and stored in
`schedules`. The same row keeps the worker's runtime state as JSON: the current occurrence
(ready-by, run time still owed, planned windows, started), the last plan, and the last command
sent to the device. Keeping the last command here is what lets a restarted worker carry on
without switching a device twice.

Changing a schedule bumps the Redis counter `schedules:version`; the device service re-plans
when it sees it move.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis

from hub.db import Database
from hub.device.store import DeviceStore
from hub.names import RedisKeys
from hub.scheduler.errors import InvalidSchedule, ReadyByPassed
from hub.scheduler.plan import Occurrence, ScheduleDefinition, next_ready_by
from hub.scheduler.window import Window


class ScheduleNotFound(LookupError):
    """The device has no schedule."""


@dataclass(frozen=True)
class StoredSchedule:
    device_id: int
    definition: ScheduleDefinition
    occurrence: Occurrence | None
    last_command: dict[str, Any] | None
    last_plan: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, **self.definition.to_json(),
                "occurrence": occurrence_json(self.occurrence),
                "last_command": self.last_command, "plan": self.last_plan}


def occurrence_json(occ: Occurrence | None) -> dict[str, Any] | None:
    if occ is None:
        return None
    return {"ready_by": occ.ready_by, "remaining_s": occ.remaining_s,
            "windows": [[w.start, w.end] for w in occ.windows], "started": occ.started}


def occurrence_from_json(obj: dict[str, Any] | None) -> Occurrence | None:
    if not obj:
        return None
    return Occurrence(int(obj["ready_by"]), int(obj["remaining_s"]),
                      tuple(Window(int(s), int(e)) for s, e in obj["windows"]),
                      bool(obj["started"]))


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _definition(row: dict[str, Any]) -> ScheduleDefinition:
    days = frozenset(int(d) for d in row["repeat_days"].split(",") if d)
    once_on = row["once_on"]
    if once_on is not None and not isinstance(once_on, date):
        once_on = date.fromisoformat(str(once_on))
    return ScheduleDefinition(row["ready_by"], int(row["period_s"]), bool(row["interruptible"]),
                              days, once_on, row["mode"], row["on_completion"])


@dataclass(eq=False)
class ScheduleStore:
    db: Database
    redis: redis.Redis
    keys: RedisKeys
    devices: DeviceStore
    timezone: str

    def set(self, device_id: int, obj: Any, now: float | None = None) -> StoredSchedule:
        """Validate and store a definition; the current occurrence is re-planned from scratch.

        Raises InvalidSchedule (bad fields) or ReadyByPassed (a one-off in the past).
        """
        now = time.time() if now is None else now
        defn = ScheduleDefinition.from_json(obj)
        if defn.mode == "smart":
            next_ready_by(defn, int(now), self.timezone)  # ReadyByPassed
        self.devices.get(device_id)  # UnknownDevice
        with self.db.cursor() as cur:
            cur.execute(
                "INSERT INTO schedules (device_id, ready_by, period_s, interruptible,"
                " repeat_days, once_on, mode, on_completion, occurrence, last_plan)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL)"
                " ON DUPLICATE KEY UPDATE ready_by = VALUES(ready_by),"
                " period_s = VALUES(period_s), interruptible = VALUES(interruptible),"
                " repeat_days = VALUES(repeat_days), once_on = VALUES(once_on),"
                " mode = VALUES(mode), on_completion = VALUES(on_completion),"
                " occurrence = NULL, last_plan = NULL",
                (device_id, defn.ready_by, defn.period_s, defn.interruptible,
                 ",".join(str(d) for d in sorted(defn.repeat)), defn.once_on, defn.mode,
                 defn.on_completion))
        self.changed()
        return self.get(device_id)

    def get(self, device_id: int) -> StoredSchedule:
        return self._stored(self.db.one("SELECT * FROM schedules WHERE device_id = %s",
                                        (device_id,),
                                        ScheduleNotFound(f"device {device_id} has no schedule")))

    def list(self) -> list[StoredSchedule]:
        with self.db.cursor() as cur:
            cur.execute("SELECT * FROM schedules ORDER BY device_id")
            return [self._stored(r) for r in cur.fetchall()]

    def _stored(self, row: dict[str, Any]) -> StoredSchedule:
        return StoredSchedule(row["device_id"], _definition(row),
                              occurrence_from_json(_loads(row["occurrence"])),
                              _loads(row["last_command"]), _loads(row["last_plan"]))

    def delete(self, device_id: int) -> None:
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM schedules WHERE device_id = %s", (device_id,))
            if not cur.rowcount:
                raise ScheduleNotFound(f"device {device_id} has no schedule")
        self.changed()

    def set_mode(self, device_id: int, mode: str) -> None:
        """Follow the device (a button press) or roll over: only the mode changes."""
        if mode not in ("smart", "on", "off"):
            raise InvalidSchedule(f"mode must be smart, on or off, not {mode!r}")
        with self.db.cursor() as cur:
            cur.execute("UPDATE schedules SET mode = %s WHERE device_id = %s",
                        (mode, device_id))

    def save_runtime(self, device_id: int, occurrence: Occurrence | None,
                     plan: dict[str, Any] | None) -> None:
        with self.db.cursor() as cur:
            cur.execute("UPDATE schedules SET occurrence = %s, last_plan = %s"
                        " WHERE device_id = %s",
                        (json.dumps(occurrence_json(occurrence)) if occurrence else None,
                         json.dumps(plan) if plan is not None else None, device_id))

    def save_last_command(self, device_id: int, command: dict[str, Any] | None) -> None:
        with self.db.cursor() as cur:
            cur.execute("UPDATE schedules SET last_command = %s WHERE device_id = %s",
                        (json.dumps(command) if command is not None else None, device_id))

    def changed(self) -> None:
        self.redis.incr(self.keys.schedules_version)

    def version(self) -> int:
        return int(self.redis.get(self.keys.schedules_version) or 0)


__all__ = ["InvalidSchedule", "ReadyByPassed", "ScheduleNotFound", "ScheduleStore",
           "StoredSchedule"]
