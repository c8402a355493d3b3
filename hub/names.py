"""Names the web and worker sides share: every Redis key the hub writes and its MQTT topics.

One list, so a key is never spelled two ways and `redis-cli --scan` output can be read
against it. Every key lives under the configured `redis_prefix` (default `hub:`).

    worker:heartbeat             JSON {pid, mqtt_connected, started, queued, services}, TTL 30 s
    worker:stats                 hash of worker counters (messages, bad_payloads, flushes, …)
    worker:redis-run             the Redis run id the worker last saw (notices Redis restarts)
    feedbuffer:…                 the feed write buffer (hub/feed/buffer.py owns the layout)
    feed:<id>                    hash: last time and value of a feed
    input:last:<user>            hash: last time and value of each input of a user
    input:version                bumped when inputs or their process lists change
    process:<name>               JSON state of an accumulator process
    login-fail:<user>:<address>  failed-login counter (lockout)
    session:<hmac>               a login session → user id
    user-sessions:<user>         set of that user's session keys
    device:<id>                  hash: live state of a device (JSON values)
    devices:version              bumped when the device table changes
    devices:profile              the last demand-shaper profile (raw JSON)
    devices:linked:<id>          set: template inputs already linked to their feeds
    schedules:version            bumped when a schedule changes
    pairing:…                    pending pairing requests and grants (hub/device/pairing.py)
    events                       pub/sub channel of UI events (pairing, device state)
    sync:progress                JSON live state of a running server sync, TTL 60 s
"""

from __future__ import annotations

# MQTT: daily profiles arrive as JSON on PROFILE_TOPIC_ROOT/<kind>.
PROFILE_TOPIC_ROOT = "cydynni/profile"
PROFILE_KINDS = ("hydro", "community", "demandshaper")
SIGNAL_TOPIC = f"{PROFILE_TOPIC_ROOT}/demandshaper"  # the scheduler's signal

# The worker writes its heartbeat this often, with this lifetime; /health.json reads it.
HEARTBEAT_S = 5
HEARTBEAT_TTL_S = 30


class RedisKeys:
    """Builds the keys listed above under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    @property
    def worker_heartbeat(self) -> str:
        return self._key("worker", "heartbeat")

    @property
    def worker_stats(self) -> str:
        return self._key("worker", "stats")

    @property
    def worker_redis_run(self) -> str:
        return self._key("worker", "redis-run")

    @property
    def feed_buffer(self) -> str:
        return self._key("feedbuffer", "")

    def feed(self, feed_id: int) -> str:
        return self._key("feed", feed_id)

    @property
    def sync_progress(self) -> str:
        return self._key("sync", "progress")

    def input_last(self, user_id: int) -> str:
        return self._key("input", "last", user_id)

    @property
    def input_version(self) -> str:
        return self._key("input", "version")

    def process_state(self, name: str) -> str:
        return self._key("process", name)

    def login_fail(self, username: str, address: str) -> str:
        return self._key("login-fail", username.lower(), address)

    def session(self, digest: str) -> str:
        return self._key("session", digest)

    def user_sessions(self, user_id: int) -> str:
        return self._key("user-sessions", user_id)

    def device(self, device_id: int) -> str:
        return self._key("device", device_id)

    @property
    def devices_version(self) -> str:
        return self._key("devices", "version")

    @property
    def signal_profile(self) -> str:
        return self._key("devices", "profile")

    def device_linked(self, device_id: int) -> str:
        return self._key("devices", "linked", device_id)

    @property
    def schedules_version(self) -> str:
        return self._key("schedules", "version")

    def pairing(self, *parts: object) -> str:
        return self._key("pairing", *parts)

    @property
    def events(self) -> str:
        return self._key("events")
