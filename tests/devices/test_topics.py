"""Device traffic is told apart from meter readings once, and the worker routes it to the
device service only: ingest never sees it, and the device service never sees plain readings."""

from __future__ import annotations

import pytest

from hub.worker.device.topics import is_device_traffic
from hub.worker.loop import Worker

DEVICE_TRAFFIC = [
    ("emon/plug1/describe", "smartplug"),
    ("emon/esp-a1b2c3/plug/in/ctrlmode", "Timer"),
    ("emon/esp-a1b2c3/plug/out/state", "on"),
    ("emon/evse-0a1b/claim", '{"state": "active", "charge_current": 16}'),
    ("emon/evse-0a1b/override/set", '{"state": "disabled"}'),
    ("openevse/announce/0a1b", '{"state": "connected"}'),
    ("tele/tas-1/LWT", "Online"),
    ("stat/tas-1/POWER", "ON"),
]


@pytest.fixture
def user_id(ctx) -> int:
    return ctx.users.register("owner", "correct horse").id


READINGS = ["emon/evse-0a1b/amp", "emon/emontx/power1", "emon/n", "emon/in"]


@pytest.mark.parametrize(("topic", "payload"), DEVICE_TRAFFIC)
def test_device_traffic_is_recognised(topic, payload):
    assert is_device_traffic(topic, "emon")


@pytest.mark.parametrize("topic", READINGS)
def test_readings_are_not_device_traffic(topic):
    assert not is_device_traffic(topic, "emon")


def test_worker_routes_device_traffic_to_the_device_service_only(ctx):
    worker = Worker(ctx)
    names = {t: [type(s).__name__ for s in worker._services_for(t)]
             for t in [t for t, _ in DEVICE_TRAFFIC] + READINGS
             + ["cydynni/profile/demandshaper", "cydynni/profile/hydro"]}
    for topic, _ in DEVICE_TRAFFIC:
        assert names[topic] == ["DeviceService"], topic
    for topic in READINGS:  # no device is known: readings go to ingest alone
        assert names[topic] == ["IngestService"], topic
    assert names["cydynni/profile/demandshaper"] == ["IngestService", "DeviceService"]
    assert names["cydynni/profile/hydro"] == ["IngestService"]


def test_readings_under_a_known_device_reach_both_services(ctx, user_id):
    ctx.devices.create(user_id, "charger", "openevse", "emon/evse-0a1b")
    worker = Worker(ctx)
    got = [type(s).__name__ for s in worker._services_for("emon/evse-0a1b/amp")]
    assert got == ["IngestService", "DeviceService"]
