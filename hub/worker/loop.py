"""`hub worker`: one MQTT client feeding the worker services, the feed flusher and a heartbeat.

- One paho-mqtt client with a fixed client id (`mqtt_client_id`) and a persistent session
  (clean_session False), subscribing at QoS 1: readings published while the worker or the
  broker is away are queued by the broker and delivered after the reconnect.
- Messages are acknowledged by hand (manual_ack) only after the services have stored them
  in Redis, so a crash or SIGKILL means re-delivery, never loss. Re-delivered readings are
  harmless: a feed slot is overwritten with the same value, and the accumulators ignore
  readings that are not newer than their last one.
- paho's network thread only queues messages; everything else (services, flushes, Redis)
  runs in this module's main loop, in batches of whatever arrived meanwhile.
- Services (SERVICES) are built as `Service(ctx, publish)` and offer `topics()` (their MQTT
  subscriptions) and `on_message(topic, payload)`, and optionally `owns(topic)` (messages
  given to that service only: device traffic never reaches ingest), `wants(topic)` (a
  run-time filter on what the subscriptions match), `on_connect()`, `tick(now)`, `stop()`
  and `commit()` (called once per batch, before the acknowledgements). A service
  exception is logged (rate-limited) and counted; it never stops the worker. When `commit()`
  fails because Redis or MariaDB is unreachable, the worker retries it with backoff and
  acknowledges nothing meanwhile, so no reading is dropped while a server restarts.
- Feed buffer flush every `flush_interval` seconds and on SIGTERM/SIGINT: finish the batch,
  stop the services, flush EVERYTHING, disconnect, exit 0.
- Redis (key names in hub/names.py): heartbeat `worker:heartbeat` (JSON, TTL 30 s, every 5 s,
  read by /health.json;
  `mqtt_connected` turns true once the subscriptions are acknowledged) and
  counters in hash `worker:stats` (messages, bad_payloads, points_not_stored, service_errors,
  flushes, redis_restarts, …).

What a SIGKILL leaves: feed files as of the last flush (each flush writes whole blocks, so
files stay readable), and in Redis the unflushed points (feed buffer), the input last values
and the accumulator state. The next worker flushes those points, so nothing is lost.

Redis restarts: a stop/restart of Redis loses nothing (it saves to a tmpfs on SIGTERM and
loads that at start, roles/redis/README.md); a crash or reboot starts it empty, losing the
unflushed window (at most `flush_interval` seconds) and the sessions. The worker watches the
Redis run id every second (one INFO) and says which it was: a WARNING "restarted and kept its
data" or an ERROR "came back empty", counted as `redis_restarts` / `redis_came_back_empty`.
The key `worker:redis-run` tells the two apart: it survives only if the data did.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import logging
import os
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.context import HubContext
from hub.db import migrate
from hub.errors import SERVER_ERRORS
from hub.input.readings import IngestError, NotStored
from hub.names import HEARTBEAT_S, HEARTBEAT_TTL_S
from hub.notify import notify
from hub.worker.device.service import DeviceService
from hub.worker.ingest import IngestService
from hub.worker.sync import SyncService

log = logging.getLogger(__name__)


SERVICES: tuple[type, ...] = (IngestService, DeviceService, SyncService)
TICK_S = 1.0
BATCH_MAX = 200  # messages per commit: bigger batches left ~14 MB of freed heap behind
SUBSCRIBE_QOS = 1
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0  # storing readings while Redis/MariaDB is away
TRIM_AFTER_POINTS = 10_000  # flushes this big return their memory to the OS
LOG_BURST, LOG_WINDOW_S = 20, 60.0  # at most this many problem logs per window


def _release_free_memory() -> None:
    """Give freed heap back to the OS after a big flush (glibc keeps it otherwise, and a
    backlog flush can briefly need tens of MB on a 1 GB Pi)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class RateLimitedLog:
    """Log problems without letting a flood of bad payloads fill the journal."""

    def __init__(self) -> None:
        self.window_start = time.monotonic()
        self.count = 0
        self.suppressed = 0

    def __call__(self, level: int, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self.window_start > LOG_WINDOW_S:
            if self.suppressed:
                log.warning("%d more problems were not logged in the last %.0f s",
                            self.suppressed, LOG_WINDOW_S)
            self.window_start, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count > LOG_BURST:
            self.suppressed += 1
            return
        log.log(level, msg, *args, exc_info=exc_info)


class Worker:
    def __init__(self, ctx: HubContext, stop: threading.Event | None = None) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.stop_event = stop or threading.Event()
        self.queue: collections.deque = collections.deque()
        self.wakeup = threading.Condition()
        self.connected = False
        self.generation = 0  # bumped per connection: acks of an older one are not sent
        self.just_connected = False
        self.stats: collections.Counter = collections.Counter()
        self.problem = RateLimitedLog()
        self.started = time.time()
        self.redis_run_id: str | None = None  # of the Redis server this worker last saw
        self.services = self._load_services()
        self.topics = sorted({t for s in self.services for t in self._topics_of(s)})
        self._routes: dict[str, list] = {}
        self.client = self._make_client()

    # -- setup -------------------------------------------------------------------------------

    def _load_services(self) -> list:
        services = []
        for cls in SERVICES:
            try:
                services.append(cls(self.ctx, self.publish))
            except Exception:
                log.exception("service %s could not start; the worker runs without it",
                              cls.__name__)
                self.stats["service_errors"] += 1
        return services

    def _topics_of(self, service) -> list[str]:
        try:
            return list(service.topics())
        except Exception:
            log.exception("%s.topics() failed", type(service).__name__)
            self.stats["service_errors"] += 1
            return []

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.mqtt_client_id,
                             clean_session=False, manual_ack=True)
        if self.config.mqtt_user:
            client.username_pw_set(self.config.mqtt_user, self.config.mqtt_password or None)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    # -- paho callbacks (network thread: queue and return) -----------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self.generation += 1
        log.info("connected to mqtt://%s:%s (session present: %s)", self.config.mqtt_host,
                 self.config.mqtt_port, flags.session_present)
        if self.topics:
            client.subscribe([(topic, SUBSCRIBE_QOS) for topic in self.topics])
        else:
            self._ready()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("broker refused subscriptions to %s: %s", self.topics, refused)
            return
        log.info("subscribed to %s", ", ".join(self.topics))
        self._ready()

    def _ready(self) -> None:
        """Connected and subscribed: only now is the heartbeat's mqtt_connected true."""
        self.connected = True
        self.just_connected = True
        self._wake()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False
        if not self.stop_event.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        self.queue.append((self.generation, message.topic, message.payload, message.mid,
                           message.qos))
        if len(self.queue) == 1:
            self._wake()

    def _wake(self) -> None:
        with self.wakeup:
            self.wakeup.notify()

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        self.client.connect_async(self.config.mqtt_host, self.config.mqtt_port, keepalive=30)
        self.client.loop_start()
        next_tick = next_beat = 0.0
        told_ready = False
        next_flush = time.monotonic() + self.config.flush_interval
        try:
            while not self.stop_event.is_set():
                with self.wakeup:
                    if not self.queue and not self.just_connected:
                        self.wakeup.wait(0.2)
                self._handle_queue()
                if self.just_connected:
                    self.just_connected = False
                    self._each_service("on_connect")
                    next_beat = 0.0  # say so at once: /health.json waits for this beat
                now = time.time()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    self._each_service("tick", now)
                    self._watch_redis()
                    self._write_stats()
                if now >= next_beat:
                    next_beat = now + HEARTBEAT_S
                    self._heartbeat()
                    if not told_ready:  # up, with or without the broker (health says which)
                        notify("READY=1")
                        told_ready = True
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + self.config.flush_interval
                    self._flush()
        finally:
            self._shutdown()
        return 0

    def _handle_queue(self) -> None:
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), BATCH_MAX))]
            for _, topic, payload, _, _ in batch:
                self.stats["messages"] += 1
                for service in self._services_for(topic):
                    self._call(service, "on_message", topic, payload)
            if not self._commit():
                return  # not stored: no acks, so the broker delivers these again
            generation = self.generation
            for gen, _, _, mid, qos in batch:
                if gen == generation and qos:
                    self.client.ack(mid, qos)

    def _commit(self) -> bool:
        """Let services store the batch; while Redis or MariaDB is unreachable, retry with
        backoff rather than acknowledge readings that were not stored. False if stopping
        before they could be (they stay unacknowledged and come again)."""
        delay = RETRY_MIN_S
        while True:
            unreachable = None
            for service in self.services:
                if hasattr(service, "commit"):
                    try:
                        self._call(service, "commit", transient_raises=True)
                    except SERVER_ERRORS as exc:
                        unreachable = exc
            if unreachable is None:
                if delay > RETRY_MIN_S:  # Redis or MariaDB was away: say if Redis restarted
                    self._watch_redis()
                return True
            self.stats["store_retries"] += 1
            self.problem(logging.ERROR, "cannot store readings (%s); retrying in %.0f s",
                         unreachable, delay)
            if self.stop_event.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)

    def _services_for(self, topic: str) -> list:
        """The services a message goes to: its owner alone if one owns it, else every
        service whose subscriptions match and which wants it."""
        found = self._routes.get(topic)
        if found is None:
            if len(self._routes) > 10_000:  # many distinct topics: do not grow forever
                self._routes.clear()
            owners = [s for s in self.services if hasattr(s, "owns") and s.owns(topic)]
            found = self._routes[topic] = owners or [
                s for s in self.services
                if any(mqtt.topic_matches_sub(pattern, topic) for pattern in self._topics_of(s))]
        return [s for s in found if not hasattr(s, "wants") or s.wants(topic)]

    def _call(self, service, method: str, *args: Any, transient_raises: bool = False) -> None:
        try:
            getattr(service, method)(*args)
        except SERVER_ERRORS:
            if transient_raises:
                raise
            self.stats["service_errors"] += 1
            self.problem(logging.ERROR, "%s.%s failed", type(service).__name__, method,
                         exc_info=True)
        except IngestError as exc:
            self.stats[exc.counter] += exc.count
            where = f" on {args[0][:80]!r}" if method == "on_message" else ""
            if isinstance(exc, NotStored):
                self.problem(logging.WARNING, "not stored%s: %s", where, exc)
            else:
                self.problem(logging.WARNING, "dropped a bad reading%s: %s", where, exc)
        except Exception:
            self.stats["service_errors"] += 1
            self.problem(logging.ERROR, "%s.%s failed", type(service).__name__, method,
                         exc_info=True)

    def _each_service(self, method: str, *args: Any) -> None:
        for service in self.services:
            if hasattr(service, method):
                self._call(service, method, *args)

    # -- periodic work -----------------------------------------------------------------------

    def _flush(self) -> None:
        try:
            stats = self.ctx.feeds.flush()
        except Exception:
            self.stats["flush_errors"] += 1
            self.problem(logging.ERROR, "feed flush failed; the points stay in Redis",
                         exc_info=True)
            return
        self.stats["flushes"] += 1
        self.stats["flushed_points"] += stats.points
        if stats.points > TRIM_AFTER_POINTS:
            _release_free_memory()
        if stats.errors:
            self.stats["flush_errors"] += len(stats.errors)
            self.problem(logging.ERROR, "flush could not write feeds: %s", stats.errors)

    def _write_stats(self) -> None:
        if not self.stats:
            return
        counts, self.stats = self.stats, collections.Counter()
        try:
            with self.ctx.redis.pipeline(transaction=False) as pipe:
                for name, n in counts.items():
                    pipe.hincrby(self.ctx.keys.worker_stats, name, n)
                pipe.execute()
        except Exception as exc:
            self.stats.update(counts)  # keep them for the next try
            self.problem(logging.WARNING, "cannot write worker stats to Redis: %s", exc)

    def _watch_redis(self) -> None:
        """Notice a Redis restart (a new run id) and say whether it kept its data."""
        try:
            run_id = str(self.ctx.redis.info("server").get("run_id", ""))
            key = self.ctx.keys.worker_redis_run
            if run_id == self.redis_run_id:
                return
            stored = self.ctx.redis.get(key)
            seen = stored.decode() if stored else None
            if self.redis_run_id is not None or (seen and seen != run_id):
                self.stats["redis_restarts"] += 1
                if seen is None:
                    self.stats["redis_came_back_empty"] += 1
                    log.error("Redis restarted and came back EMPTY (crash or reboot, not a "
                              "clean stop): readings not yet flushed to disk (at most %s s) "
                              "and login sessions are lost", self.config.flush_interval)
                else:
                    log.warning("Redis restarted (run %s → %s) and kept its data: nothing "
                                "lost", (seen or "?")[:8], run_id[:8])
            self.ctx.redis.set(key, run_id)
            self.redis_run_id = run_id
        except Exception as exc:  # unreachable: the heartbeat and commit retries report it
            log.debug("cannot read the Redis run id: %s", exc)

    def _heartbeat(self) -> None:
        state = {"pid": os.getpid(), "mqtt_connected": self.connected,
                 "started": int(self.started), "queued": len(self.queue),
                 "services": [type(s).__name__ for s in self.services]}
        try:
            self.ctx.redis.set(self.ctx.keys.worker_heartbeat, json.dumps(state),
                               ex=HEARTBEAT_TTL_S)
        except Exception as exc:
            self.problem(logging.WARNING, "cannot write the heartbeat to Redis: %s", exc)

    def _shutdown(self) -> None:
        log.info("stopping: finishing queued readings, then flushing every feed")
        self._handle_queue()
        self._each_service("stop")
        self._flush()
        self._watch_redis()
        self._write_stats()
        self.client.disconnect()
        self.client.loop_stop()
        try:
            self.ctx.redis.delete(self.ctx.keys.worker_heartbeat)
        except Exception as exc:
            log.warning("cannot remove the heartbeat: %s", exc)
        log.info("worker stopped")


def run_worker(ctx: HubContext, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until `stop` is set, for tests running it in a thread)."""
    stop = stop or threading.Event()
    workers: list[Worker] = []
    if threading.current_thread() is threading.main_thread():
        # Installed first, so a SIGTERM during start-up still ends in a clean stop and flush.
        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            stop.set()
            for worker in workers:
                worker._wake()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    migrate(ctx.db)
    workers.append(Worker(ctx, stop))
    return workers[0].run()
