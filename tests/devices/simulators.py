"""Small simulated devices on the real broker, behaving as their firmware documents.

Each one connects with its own broker account, subscribes to its command topics and answers
the way the firmware does (topic in → topic out). Tests also press their buttons.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

from tests.devices.mqttclient import TestClient


class SimEmonEsp:
    """EmonESP smart plug: `<base>/<node>/in/{ctrlmode,timer,state}` → `out/...`."""

    def __init__(self, port: int, user: str, password: str, basetopic: str,
                 node: str = "smartplug1272", node_type: str = "smartplug") -> None:
        self.base = f"{basetopic}/{node}"
        self.node_type = node_type
        self.ctrlmode = "Off"
        self.timer = [0, 0, 0, 0]
        self.log: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.mqtt = TestClient(port, user, password)
        self.mqtt.client.on_message = self._on_message

    def start(self) -> SimEmonEsp:
        self.mqtt.connect()
        assert self.mqtt.subscribe(f"{self.base}/in/#")
        self.mqtt.publish(f"{self.base}/describe", self.node_type)  # on every connect
        return self

    def _on_message(self, _c, _u, msg) -> None:
        leaf = msg.topic[len(self.base) + 1:]
        payload = msg.payload.decode()
        with self.changed:
            self.log.append((leaf, payload))
            if leaf == "in/ctrlmode":
                self.ctrlmode = {"on": "On", "1": "On", "timer": "Timer", "2": "Timer"}.get(
                    payload.lower(), "Off")  # anything else means Off
            elif leaf == "in/timer" and len(payload) in (9, 19):
                self.timer = [int(p) for p in payload.split()] + [0, 0]
                self.timer = self.timer[:4]
            elif leaf == "in/state":
                self.report()
            self.changed.notify_all()

    def relay_on(self, now: float) -> bool:
        if self.ctrlmode != "Timer":
            return self.ctrlmode == "On"
        t = datetime.fromtimestamp(now, UTC)
        hhmm = t.hour * 100 + t.minute
        start, stop = self.timer[0], self.timer[1]
        if start == stop:
            return False
        if start < stop:
            return start <= hhmm < stop
        return hhmm >= start or hhmm < stop

    def report(self) -> None:
        timer = " ".join(str(v) for v in self.timer)
        self.mqtt.client.publish(f"{self.base}/out/state", json.dumps(
            {"ip": "192.0.2.10", "ctrlmode": self.ctrlmode, "timer": timer, "vout": "0"}))

    def press_button(self) -> None:
        self.ctrlmode = "Off" if self.ctrlmode == "On" else "On"
        self.mqtt.publish(f"{self.base}/out/ctrlmode", self.ctrlmode)

    def wait_for(self, predicate, timeout: float = 10) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def stop(self) -> None:
        self.mqtt.close()


class SimOpenEvse:
    """OpenEVSE WiFi v4: `<t>/claim/set` → retained `<t>/claim`; announce with LWT."""

    def __init__(self, port: int, user: str, password: str, basetopic: str,
                 evse_id: str = "a1b2") -> None:
        self.base = basetopic
        self.announce = f"openevse/announce/{evse_id}"
        info = {"id": evse_id, "name": "openevse-" + evse_id, "mqtt": basetopic,
                "http": "http://192.0.2.20/"}
        self.online = json.dumps({**info, "state": "connected"})
        self.claim: dict | None = None
        self.changed = threading.Condition()
        self.mqtt = TestClient(port, user, password,
                               will=(self.announce, json.dumps({**info,
                                                                "state": "disconnected"})))
        self.mqtt.client.on_message = self._on_message

    def start(self) -> SimOpenEvse:
        self.mqtt.connect()
        assert self.mqtt.subscribe(f"{self.base}/claim/set")
        assert self.mqtt.subscribe(f"{self.base}/override/set")
        self.mqtt.publish(self.announce, self.online, retain=True)
        self.mqtt.publish(f"{self.base}/state", "1")
        return self

    def _on_message(self, _c, _u, msg) -> None:
        with self.changed:
            if msg.topic == f"{self.base}/claim/set":
                body = msg.payload.decode()
                self.claim = None if body == "release" else json.loads(body)
                self.mqtt.client.publish(f"{self.base}/claim", json.dumps(self.claim or {}),
                                         retain=True)
                charging = bool(self.claim and self.claim.get("state") == "active")
                self.mqtt.client.publish(f"{self.base}/state", "3" if charging else "254")
            self.changed.notify_all()

    def user_override(self, state: str) -> None:
        self.mqtt.publish(f"{self.base}/override", json.dumps({"state": state}), retain=True)

    def wait_for(self, predicate, timeout: float = 10) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT: the broker sends the will."""
        self.mqtt.client.loop_stop()
        self.mqtt.client.socket().close()

    def stop(self) -> None:
        self.mqtt.close()


class SimTasmota:
    """Tasmota: `cmnd/<t>/POWER` → `stat/<t>/RESULT` + `stat/<t>/POWER`; LWT Online/Offline."""

    def __init__(self, port: int, user: str, password: str, topic: str) -> None:
        self.t = topic
        self.power = False
        self.changed = threading.Condition()
        self.mqtt = TestClient(port, user, password, will=(f"tele/{topic}/LWT", "Offline"))
        self.mqtt.client.on_message = self._on_message

    def start(self) -> SimTasmota:
        self.mqtt.connect()
        assert self.mqtt.subscribe(f"cmnd/{self.t}/#")
        self.mqtt.publish(f"tele/{self.t}/LWT", "Online", retain=True)
        return self

    def _on_message(self, _c, _u, msg) -> None:
        with self.changed:
            if msg.topic == f"cmnd/{self.t}/POWER":
                word = msg.payload.decode().upper()
                if word in ("ON", "1"):
                    self.power = True
                elif word in ("OFF", "0"):
                    self.power = False
                elif word == "TOGGLE":
                    self.power = not self.power
                self._tell()
            self.changed.notify_all()

    def _tell(self) -> None:
        state = "ON" if self.power else "OFF"
        self.mqtt.client.publish(f"stat/{self.t}/RESULT", json.dumps({"POWER": state}))
        self.mqtt.client.publish(f"stat/{self.t}/POWER", state)

    def press_button(self) -> None:
        with self.changed:
            self.power = not self.power
            self._tell()

    def wait_for(self, predicate, timeout: float = 10) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def stop(self) -> None:
        self.mqtt.close()
