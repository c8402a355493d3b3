"""End to end through `hub worker`: a device paired over HTTP, switched by its schedule, and
revoked, with the real worker, broker, database and Redis."""

from __future__ import annotations

from tests.conftest import make_account
from tests.devices.simulators import SimEmonEsp, SimTasmota
from tests.devices.test_pairing import EMONESP_PATH, device_get, emonesp_parse
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


def test_a_plug_paired_by_another_household_stays_theirs(servers, hub_config, admin, web,
                                                         new_client):
    """Issue 11 #4: user B pairs a plug over HTTP (EmonESP names its type in the request);
    its describe, its readings and its schedule commands all stay with B's one device."""
    bee = make_account(new_client, "bee", by=admin.client)
    status, _ = device_get(web, path=f"{EMONESP_PATH}?type=smartplug&name=plug")
    assert status == 200
    assert bee.client.post("/device/auth/allow.json", {"ip": "127.0.0.1"}).status == 200
    user, password, base = emonesp_parse(device_get(web, path=EMONESP_PATH)[1])
    sim = SimEmonEsp(servers.mqtt_port, user, password, base, node="smartplug")
    try:
        with worker_thread(worker_config(hub_config)) as ctx:
            sim.start()  # publishes <base>/smartplug/describe
            wait_until(lambda: ctx.devices.list()[0].base_topic == sim.base,
                       what="the paired device takes the announced topic")
            sim.mqtt.publish(f"{sim.base}/power", "42")
            # the input row is created before its first value lands: wait for the value
            wait_until(lambda: [i["value"] for i in ctx.inputs.list(bee.userid)] == [42.0],
                       what="B's input with its reading")
            devices = ctx.devices.list()
            assert [(d.user_id, d.base_topic) for d in devices] == [(bee.userid, sim.base)]
            assert [(i["name"], i["value"]) for i in ctx.inputs.list(bee.userid)] == [
                ("smartplug_power", 42.0)]
            assert ctx.inputs.list(admin.userid) == []
            # B's schedule reaches the plug's own command topic
            res = bee.client.post(f"/schedule/set.json?device={devices[0].id}",
                                  json_body={"ready_by": "07:00", "period": 3600,
                                             "mode": "on"})
            assert res.status == 200, res.text
            assert sim.wait_for(lambda: sim.ctrlmode == "On", timeout=15), sim.log
            assert len(ctx.devices.list()) == 1
    finally:
        sim.stop()
        clear_retained(servers)
