"""Runs the device service as `hub worker` does — one real MQTT client as the hub account,
messages handed to `on_message`, `tick` every call — but stepped by the test, with a clock
the test controls, so schedules can be driven through days without waiting for them."""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt

from hub.worker.device.service import DeviceService
from tests.devices.mqttclient import TestClient


class ServiceRunner:
    def __init__(self, ctx, servers, now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self.mqtt = TestClient(servers.mqtt_port, servers.mqtt_user, servers.mqtt_password)
        self.published: list[tuple[str, str]] = []
        self.service = DeviceService(ctx, self.publish, clock=lambda: self.now)
        self.mqtt.connect()
        for topic in self.service.topics():
            assert self.mqtt.subscribe(topic)
        self.service.on_connect()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload))
        self.mqtt.client.publish(topic, payload, qos=qos, retain=retain)

    def pump(self, seconds: float = 0.3) -> int:
        """Hand every message that arrives within `seconds` to the service."""
        handled = 0
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.mqtt.messages.get(timeout=max(left, 0.01))
            except queue.Empty:
                if left <= 0:
                    return handled
                continue
            if any(mqtt.topic_matches_sub(t, msg.topic) for t in self.service.topics()) \
                    and self.service.wants(msg.topic):
                self.service.on_message(msg.topic, msg.payload)
                handled += 1

    def until(self, predicate, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            if predicate():
                return True
        return False

    def tick(self, at: float | None = None) -> None:
        if at is not None:
            self.now = at
        self.service.tick(self.now)

    def close(self) -> None:
        self.service.stop()
        self.mqtt.close()
