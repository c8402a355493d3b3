"""End to end through `hub worker`: a device paired over HTTP, switched by its schedule, and
revoked, with the real worker, broker, database and Redis."""

from __future__ import annotations

from tests.devices.simulators import SimTasmota
from tests.devices.test_service import account, clear_retained
from tests.hub.test_worker import wait_until, worker_config, worker_thread


def test_worker_switches_a_device_by_schedule_and_follows_it(servers, hub_config, admin):
    acc = account(admin, "tasmota", "radiator")
    device_id = acc["device"]["id"]
    sim = SimTasmota(servers.mqtt_port, acc["mqtt_user"], acc["mqtt_password"], acc["topic"])
    try:
        with worker_thread(worker_config(hub_config)) as ctx:
            sim.start()
            wait_until(lambda: ctx.devices.state(device_id).get("present") is True,
                       what="device presence from its LWT")
            res = admin.client.post(f"/schedule/set.json?device={device_id}",
                                    json_body={"ready_by": "07:00", "period": 3600,
                                               "mode": "on"})
            assert res.status == 200, res.text
            assert sim.wait_for(lambda: sim.power, timeout=15)
            wait_until(lambda: ctx.devices.state(device_id).get("power") is True,
                       what="power state reported back")
            listed = admin.client.get("/device/list.json").json()
            assert listed[0]["state"]["power"] is True and listed[0]["type"] == "tasmota"
            # Removing the device disconnects it at once.
            assert admin.client.post("/device/delete.json", {"id": device_id}).status == 200
            assert sim.mqtt.disconnected.wait(5)
    finally:
        sim.stop()
        clear_retained(servers)
