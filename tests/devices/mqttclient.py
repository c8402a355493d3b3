"""A blocking MQTT client for tests: connect as an account, subscribe, wait for messages."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt


class ConnectRefused(Exception):
    pass


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class TestClient:
    __test__ = False  # not a pytest class

    def __init__(self, port: int, username: str, password: str, client_id: str | None = None,
                 will: tuple[str, str] | None = None) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.port = port
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_rc = None
        self.suback: dict[int, list] = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c, _u, _f, rc, _p) -> None:
        self.connect_rc = rc
        self.connected.set()

    def _on_disconnect(self, _c, _u, _f, _rc, _p) -> None:
        self.disconnected.set()

    def _on_message(self, _c, _u, msg) -> None:
        self.messages.put(Received(msg.topic, msg.payload, bool(msg.retain)))

    def _on_subscribe(self, _c, _u, mid, codes, _p) -> None:
        with self._suback_event:
            self.suback[mid] = list(codes)
            self._suback_event.notify_all()

    def connect(self, timeout: float = 5) -> TestClient:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectRefused("no CONNACK")
        if self.connect_rc.is_failure:
            self.client.loop_stop()
            raise ConnectRefused(str(self.connect_rc))
        return self

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5) -> bool:
        """True when the broker granted the subscription."""
        _rc, mid = self.client.subscribe(topic, qos=qos)
        deadline = time.monotonic() + timeout
        with self._suback_event:
            while mid not in self.suback:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no SUBACK for {topic}")
                self._suback_event.wait(left)
        return all(not code.is_failure for code in self.suback[mid])

    def publish(self, topic: str, payload: str | bytes, qos: int = 1,
                retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def expect(self, topic: str | None = None, timeout: float = 5) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {topic}")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if topic is None or mqtt.topic_matches_sub(topic, msg.topic):
                return msg

    def nothing_on(self, topic: str, wait: float = 1.0) -> bool:
        try:
            self.expect(topic, wait)
        except TimeoutError:
            return True
        return False

    def drain(self) -> None:
        while not self.messages.empty():
            self.messages.get_nowait()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
