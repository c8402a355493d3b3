"""Inputs: the latest reading of each (user, node, name), and the process list it runs.

- An input is a row of `inputs` (migration 002) created the first time a reading names it;
  its process list is stored as JSON (see hub.input.process). The last (time, value) lives
  only in Redis, hash `input:last:<user>` field `<input id>` = "[time, value]", the newest
  by time: a reading never writes to the SD card until a process logs it to a feed.
- emoncms does not run the process list of an input on the post that creates it. That
  quirk is moot here and not kept: a new input's process list is empty, so the first
  reading only sets its last value, exactly what emoncms ends up doing.
- The worker keeps every user's inputs in memory; a Redis counter `input:version`, bumped by
  any change (create, process list, delete) from any process, tells it to reload, at the cost
  of one GET per batch of readings.
- Limits: `max_nodes_per_user` distinct nodes (setting; emoncms' 32) and MAX_INPUTS_PER_USER
  inputs, so a runaway or hostile device cannot fill the database.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pymysql
import redis

from hub.db import Database
from hub.feed.common import FeedNotFound
from hub.feed.store import FeedStore
from hub.input import process as proc
from hub.input.readings import NodePost
from hub.names import RedisKeys

log = logging.getLogger(__name__)

MAX_INPUTS_PER_USER = 1000
_DESCRIPTION = re.compile(r"^[^\x00-\x1f\x7f]{0,128}$")


class InputError(ValueError):
    """Base of input store errors."""


class InputNotFound(InputError):
    def __init__(self, input_id: object) -> None:
        super().__init__(f"input {input_id} does not exist")


class InputLimit(InputError):
    """Creating the input would pass the node or input limit."""


class NoSuchUser(InputError):
    """Readings for a user id that has no account (e.g. before the first registration)."""


class BadField(InputError):
    """input/set was given a field that cannot be set or a bad value."""


@dataclass
class Input:
    id: int
    user_id: int
    nodeid: str
    name: str
    description: str
    processlist: list[dict]
    steps: list[proc.Step] = field(default_factory=list, repr=False)


@dataclass
class IngestReport:
    readings: int = 0  # values stored as input last values
    created: int = 0  # inputs created now
    points: int = 0  # feed points queued by process lists
    rejected: list[str] = field(default_factory=list)  # one message per rejected post
    errors: list[str] = field(default_factory=list)  # process / feed failures
    not_stored: int = 0  # feed points (or process steps) lost to those failures

    def not_stored_message(self) -> str:
        """What was not stored, for the HTTP answer and the worker's log ('' if all was)."""
        if not self.errors:
            return ""
        more = f" (and {len(self.errors) - 1} more problems)" if len(self.errors) > 1 else ""
        return (f"{self.readings} readings stored as input values, but {self.not_stored} "
                f"feed points were not: {self.errors[0]}{more}; check the process lists")


def _row_to_input(row: dict) -> Input:
    try:
        stored = json.loads(row["processlist"]) if row["processlist"] else []
        steps = proc.compile_processlist(stored)
    except (ValueError, KeyError, TypeError, proc.ProcessError) as exc:
        log.error("input %s: stored process list unreadable, not running it: %s",
                  row["id"], exc)
        stored, steps = [], []
    return Input(row["id"], row["user_id"], row["nodeid"], row["name"], row["description"],
                 stored, steps)


class InputStore:
    def __init__(self, db: Database, redis_client: redis.Redis, keys: RedisKeys,
                 feeds: FeedStore, max_nodes_per_user: int) -> None:
        self.db = db
        self.redis = redis_client
        self.keys = keys
        self.feeds = feeds
        self.max_nodes_per_user = max_nodes_per_user
        self._version: bytes | None = None
        self._by_user: dict[int, dict[tuple[str, str], Input]] = {}

    # -- keys and cache ----------------------------------------------------------------------

    def _last_key(self, user_id: int) -> str:
        return self.keys.input_last(user_id)

    def _changed(self) -> None:
        self.redis.incr(self.keys.input_version)

    def _table(self, user_id: int) -> dict[tuple[str, str], Input]:
        version = self.redis.get(self.keys.input_version)
        if version != self._version:
            self._by_user.clear()
            self._version = version
        table = self._by_user.get(user_id)
        if table is None:
            table = self._by_user[user_id] = {(i.nodeid, i.name): i
                                              for i in self._load(user_id)}
        return table

    def _load(self, user_id: int) -> list[Input]:
        with self.db.cursor() as cur:
            cur.execute("SELECT id, user_id, nodeid, name, description, processlist"
                        " FROM inputs WHERE user_id = %s ORDER BY id", (user_id,))
            return [_row_to_input(row) for row in cur.fetchall()]

    # -- ingest ------------------------------------------------------------------------------

    def ingest(self, user_id: int, posts: list[NodePost]) -> IngestReport:
        """Store readings as last values and run their process lists.

        A post that would pass a limit is rejected whole (its message in `report.rejected`);
        the others go on. Feed writes of the whole call are committed together.
        """
        report = IngestReport()
        table = self._table(user_id)
        accepted = self._create_missing(user_id, posts, table, report)
        if report.created:
            table = self._table(user_id)
        last: dict[int, tuple[int, float]] = {}
        batch = proc.ProcessBatch(self.feeds, self.redis, self.keys)
        for post in accepted:
            for name, value in post.values.items():
                found = table[(post.node, name)]
                seen = last.get(found.id)
                if seen is None or post.time >= seen[0]:
                    last[found.id] = (post.time, value)
                report.readings += 1
                if found.steps:
                    proc.run_processlist(batch, found.steps, post.time, value)
        if last:
            self._store_last(user_id, last)
        report.points = batch.commit()
        report.errors = batch.errors
        report.not_stored = batch.not_stored
        return report

    def _store_last(self, user_id: int, last: dict[int, tuple[int, float]]) -> None:
        """Set last values, except where Redis already holds a newer one (backfill, or a
        re-delivered old reading, must not replace the live value)."""
        key = self._last_key(user_id)
        ids = list(last)
        stored = self.redis.hmget(key, [str(i) for i in ids])
        newer = {str(i): json.dumps(last[i]) for i, raw in zip(ids, stored, strict=True)
                 if raw is None or json.loads(raw)[0] <= last[i][0]}
        if newer:
            self.redis.hset(key, mapping=newer)

    def _create_missing(self, user_id: int, posts: list[NodePost],
                        table: dict[tuple[str, str], Input], report: IngestReport
                        ) -> list[NodePost]:
        nodes = {node for node, _ in table}
        count = len(table)
        new: dict[tuple[str, str], None] = {}
        accepted = []
        for post in posts:
            missing = [(post.node, n) for n in post.values
                       if (post.node, n) not in table and (post.node, n) not in new]
            if missing and post.node not in nodes and \
                    len(nodes) >= self.max_nodes_per_user:
                report.rejected.append(f"node {post.node!r} not created: the limit of "
                                       f"{self.max_nodes_per_user} nodes is reached")
                continue
            if count + len(missing) > MAX_INPUTS_PER_USER:
                report.rejected.append(f"inputs of node {post.node!r} not created: the limit "
                                       f"of {MAX_INPUTS_PER_USER} inputs is reached")
                continue
            nodes.add(post.node)
            count += len(missing)
            new.update(dict.fromkeys(missing))
            accepted.append(post)
        if new:
            try:
                with self.db.cursor() as cur:
                    # Not INSERT IGNORE: that would also silence a missing user.
                    cur.executemany("INSERT INTO inputs (user_id, nodeid, name, processlist)"
                                    " VALUES (%s, %s, %s, '[]')"
                                    " ON DUPLICATE KEY UPDATE id = id",
                                    [(user_id, node, name) for node, name in new])
            except pymysql.err.IntegrityError as exc:
                if exc.args[0] == 1452:  # foreign key: no such user
                    raise NoSuchUser(f"hub user {user_id} does not exist (yet): register the "
                                     "first user, or set mqtt_user_id") from None
                raise
            self._changed()
            report.created = len(new)
        return accepted

    # -- reading -----------------------------------------------------------------------------

    def _last_values(self, user_id: int) -> dict[int, tuple[int, float]]:
        raw = self.redis.hgetall(self._last_key(user_id))
        return {int(k): tuple(json.loads(v)) for k, v in raw.items()}

    def list(self, user_id: int) -> list[dict[str, Any]]:
        """emoncms input/list: [{id, nodeid, name, description, processList, time, value}]."""
        last = self._last_values(user_id)
        return [self._as_dict(i, last.get(i.id)) for i in self._load(user_id)]

    @staticmethod
    def _as_dict(found: Input, last: tuple[int, float] | None) -> dict[str, Any]:
        t, v = last if last else (None, None)
        return {"id": found.id, "nodeid": found.nodeid, "name": found.name,
                "description": found.description, "processList": found.processlist,
                "time": t, "value": v}

    def tree(self, user_id: int, node: str | None = None, name: str | None = None
             ) -> dict[str, Any]:
        """emoncms input/get: {node: {name: {time, value, processList}}} (filtered)."""
        last = self._last_values(user_id)
        out: dict[str, dict[str, Any]] = {}
        for found in self._load(user_id):
            if (node is None or found.nodeid == node) and (name is None or found.name == name):
                t, v = last.get(found.id, (None, None))
                out.setdefault(found.nodeid, {})[found.name] = {
                    "time": t, "value": v, "processList": found.processlist}
        return out

    def get(self, user_id: int, input_id: int) -> dict[str, Any]:
        found = self._owned(user_id, input_id)
        return self._as_dict(found, self._last_values(user_id).get(found.id))

    def _owned(self, user_id: int, input_id: int) -> Input:
        """The input if it is the user's: another user's input is reported as missing."""
        return _row_to_input(self.db.one(
            "SELECT id, user_id, nodeid, name, description, processlist"
            " FROM inputs WHERE id = %s AND user_id = %s", (input_id, user_id),
            InputNotFound(input_id)))

    # -- changing ----------------------------------------------------------------------------

    def set_fields(self, user_id: int, input_id: int, fields: object) -> dict[str, Any]:
        """input/set: only `description` can change (names are what devices post to)."""
        self._owned(user_id, input_id)
        if not isinstance(fields, dict) or not fields:
            raise BadField('fields must be a JSON object such as {"description": "kitchen"}')
        unknown = set(fields) - {"description"}
        if unknown:
            raise BadField(f"cannot set {sorted(unknown)}: only description can be changed")
        description = fields["description"]
        if not isinstance(description, str) or not _DESCRIPTION.match(description):
            raise BadField("description must be text of at most 128 printable characters")
        with self.db.cursor() as cur:
            cur.execute("UPDATE inputs SET description = %s WHERE id = %s",
                        (description, input_id))
        self._changed()
        return self.get(user_id, input_id)

    def delete(self, user_id: int, input_ids: list[int]) -> int:
        for input_id in input_ids:
            self._owned(user_id, input_id)
        with self.db.cursor() as cur:
            cur.executemany("DELETE FROM inputs WHERE id = %s AND user_id = %s",
                            [(i, user_id) for i in input_ids])
        if input_ids:
            self.redis.hdel(self._last_key(user_id), *[str(i) for i in input_ids])
        self._changed()
        return len(input_ids)

    def get_processlist(self, user_id: int, input_id: int) -> list[dict]:
        return self._owned(user_id, input_id).processlist

    def set_processlist(self, user_id: int, input_id: int, raw: Any) -> list[dict]:
        """Validate (unknown process, bad argument, missing or foreign feed) and store."""
        self._owned(user_id, input_id)
        stored = proc.parse_processlist(raw, self._feed_owner, user_id)
        with self.db.cursor() as cur:
            cur.execute("UPDATE inputs SET processlist = %s WHERE id = %s",
                        (json.dumps(stored), input_id))
        self._changed()
        return stored

    def reset_processlist(self, user_id: int, input_id: int) -> None:
        self.set_processlist(user_id, input_id, [])

    def _feed_owner(self, feed_id: int) -> int | None:
        try:
            return self.feeds.get(feed_id).user_id
        except FeedNotFound:
            return None
