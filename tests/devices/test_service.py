"""The device service against the real broker with simulated devices of each type:
announcements, commands, state, button presses, schedules, restarts, DST and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.devices.harness import ServiceRunner
from tests.devices.mqttclient import TestClient
from tests.devices.simulators import SimEmonEsp, SimOpenEvse, SimTasmota

LONDON = ZoneInfo("Europe/London")
PROFILE_TOPIC = "cydynni/profile/demandshaper"


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def account(admin, kind: str, name: str) -> dict:
    res = admin.client.post("/device/account/create.json", {"type": kind, "name": name})
    assert res.status == 200, res.text
    return res.json()


@pytest.fixture
def hub_mqtt(servers):
    client = TestClient(servers.mqtt_port, servers.mqtt_user, servers.mqtt_password).connect()
    yield client
    client.close()


@pytest.fixture
def runner(ctx, servers, admin):
    made = []

    def make(now: float) -> ServiceRunner:
        r = ServiceRunner(ctx, servers, now)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def sims(servers):
    made = []
    yield made
    for sim in made:
        sim.stop()
    clear_retained(servers)


def clear_retained(servers) -> None:
    """Simulators leave retained announcements on the shared broker: remove them."""
    hub = TestClient(servers.mqtt_port, servers.mqtt_user, servers.mqtt_password).connect()
    try:
        hub.subscribe("#")
        while True:
            try:
                msg = hub.expect(timeout=0.5)
            except TimeoutError:
                break
            if msg.retain and msg.payload:
                hub.publish(msg.topic, b"", retain=True)
    finally:
        hub.close()


def profile(start: int, values: list[float | None], interval: int = 1800) -> str:
    return json.dumps({"start": start, "interval": interval, "values": values})


def send_profile(hub_mqtt, run: ServiceRunner, start: int, values) -> None:
    hub_mqtt.publish(PROFILE_TOPIC, profile(start, values))
    expected = [None if v is None else float(v) for v in values]

    def arrived() -> bool:
        latest = run.service.profile._latest
        return latest is not None and latest.to_json()["values"] == expected

    assert run.until(arrived)


def commands(run: ServiceRunner, device_base: str) -> list[tuple[str, str]]:
    return [(t, p) for t, p in run.published if t.startswith(device_base + "/in/ctrlmode")
            or t.startswith(device_base + "/in/timer")]


def emonesp_device(admin, servers, run, sims, ctx) -> tuple[SimEmonEsp, dict]:
    acc = account(admin, "emonesp", "plug")
    sim = SimEmonEsp(servers.mqtt_port, acc["mqtt_user"], acc["mqtt_password"],
                     acc["mqtt_topic"]).start()
    sims.append(sim)
    device_id = acc["device"]["id"]
    assert run.until(lambda: ctx.devices.get(device_id).base_topic == sim.base)
    assert run.until(lambda: ctx.devices.state(device_id).get("ctrlmode") == "off")
    return sim, ctx.devices.describe(ctx.devices.get(device_id))


def present_device(admin, servers, run, sims, ctx, kind: str, name: str, sim_class,
                   topic_key: str = "mqtt_topic"):
    """Pair a simulated device of `kind`, start it, and wait until the hub sees it present."""
    acc = account(admin, kind, name)
    sim = sim_class(servers.mqtt_port, acc["mqtt_user"], acc["mqtt_password"],
                    acc[topic_key]).start()
    sims.append(sim)
    device_id = acc["device"]["id"]
    assert run.until(lambda: ctx.devices.state(device_id).get("present") is True)
    return sim, device_id


# -- EmonESP -----------------------------------------------------------------------------------

def test_emonesp_announces_reports_and_runs_the_cheapest_window(ctx, admin, servers, runner,
                                                                sims, hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device = emonesp_device(admin, servers, run, sims, ctx)
    assert device["node_type"] == "smartplug" and device["type"] == "emonesp"
    assert device["state"]["present"] is True
    # Cheapest hour: 02:00-03:00 UTC (slots 16 and 17 from 18:00).
    values = [10.0] * 48
    values[16] = values[17] = 1.0
    send_profile(hub_mqtt, run, now, values)
    res = admin.client.post(f"/schedule/set.json?device={device['id']}",
                            json_body={"ready_by": "07:00", "period": 3600, "repeat": []})
    assert res.status == 200, res.text
    run.tick(now)
    assert sim.wait_for(lambda: sim.ctrlmode == "Timer" and sim.timer[:2] == [200, 300])
    assert not sim.relay_on(utc(2026, 6, 10, 23, 0)) and sim.relay_on(utc(2026, 6, 11, 2, 30))
    # Publishes only changes: more ticks in the same plan send nothing new.
    sent = len(commands(run, sim.base))
    run.tick(now + 60)
    run.tick(now + 120)
    assert len(commands(run, sim.base)) == sent
    explain = admin.client.get(f"/schedule/explain.json?device={device['id']}").json()
    assert explain["last_plan"]["windows"][0]["start"] == utc(2026, 6, 11, 2, 0)
    assert explain["last_plan"]["better_than_run_now_by"] > 0


def test_button_press_wins_and_is_not_undone(ctx, admin, servers, runner, sims, hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device = emonesp_device(admin, servers, run, sims, ctx)
    admin.client.post(f"/schedule/set.json?device={device['id']}",
                      json_body={"ready_by": "07:00", "period": 3600})
    run.tick(now)
    assert sim.wait_for(lambda: sim.ctrlmode == "Timer")
    sim.press_button()  # On, at the plug
    assert run.until(lambda: ctx.schedules.get(device["id"]).definition.mode == "on")
    before = len(commands(run, sim.base))
    run.tick(now + 60)
    run.tick(now + 120)
    assert sim.ctrlmode == "On" and len(commands(run, sim.base)) == before
    assert ctx.devices.state(device["id"])["mode"] == "on"


def test_restart_does_not_switch_twice(ctx, admin, servers, runner, sims, hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    first = runner(now)
    sim, device = emonesp_device(admin, servers, first, sims, ctx)
    admin.client.post(f"/schedule/set.json?device={device['id']}",
                      json_body={"ready_by": "07:00", "period": 3600})
    first.tick(now)
    assert sim.wait_for(lambda: sim.ctrlmode == "Timer")
    received = len(sim.log)
    first.close()
    second = runner(now + 30)  # a new worker process: nothing in memory
    second.tick(now + 30)
    second.tick(now + 90)
    assert commands(second, sim.base) == []
    assert len(sim.log) == received


def test_new_profile_replans_but_never_moves_a_started_run(ctx, admin, servers, runner, sims,
                                                           hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device = emonesp_device(admin, servers, run, sims, ctx)
    values = [10.0] * 48
    values[16] = values[17] = 1.0  # 02:00-03:00 cheapest
    send_profile(hub_mqtt, run, now, values)
    admin.client.post(f"/schedule/set.json?device={device['id']}",
                      json_body={"ready_by": "07:00", "period": 3600})
    run.tick(now)
    assert sim.wait_for(lambda: sim.timer[:2] == [200, 300])
    # Before it starts, a new profile moves it: 04:00-05:00 is now cheapest.
    values2 = [10.0] * 48
    values2[20] = values2[21] = 0.5
    send_profile(hub_mqtt, run, now, values2)
    run.tick(now + 60)
    assert sim.wait_for(lambda: sim.timer[:2] == [400, 500])
    # Once it has started (04:10), a profile favouring 05:00-06:00 does not move it.
    run.tick(utc(2026, 6, 11, 4, 10))
    values3 = [10.0] * 48
    values3[22] = values3[23] = 0.1
    send_profile(hub_mqtt, run, now, values3)
    run.tick(utc(2026, 6, 11, 4, 11))
    run.pump(0.5)
    assert sim.timer[:2] == [400, 500]
    occ = ctx.schedules.get(device["id"]).occurrence
    assert occ.started and occ.remaining_s == 3600 - 11 * 60


def test_window_across_midnight_and_dst_night(ctx, admin, servers, runner, sims, hub_mqtt):
    # Europe/London springs forward at 01:00 UTC on 2026-03-29. Ready by 07:00 local = 06:00 UTC.
    now = utc(2026, 3, 28, 20, 0)
    run = runner(now)
    sim, device = emonesp_device(admin, servers, run, sims, ctx)
    values = [10.0] * 24
    values[7] = values[8] = 1.0  # 23:30-00:30 UTC: crosses midnight
    send_profile(hub_mqtt, run, now, values)
    admin.client.post(f"/schedule/set.json?device={device['id']}",
                      json_body={"ready_by": "07:00", "period": 3600})
    run.tick(now)
    assert sim.wait_for(lambda: sim.timer[:2] == [2330, 30] and sim.ctrlmode == "Timer")
    assert sim.relay_on(utc(2026, 3, 29, 0, 15)) and not sim.relay_on(utc(2026, 3, 29, 0, 45))
    occ = ctx.schedules.get(device["id"]).occurrence
    assert occ.ready_by == utc(2026, 3, 29, 6, 0)
    # After the run and past ready-by, a one-off ends as "off" and the plug is told Off.
    run.tick(utc(2026, 3, 29, 0, 30))
    run.tick(utc(2026, 3, 29, 6, 1))
    assert sim.wait_for(lambda: sim.ctrlmode == "Off")
    assert ctx.schedules.get(device["id"]).definition.mode == "off"


def test_repeating_schedule_rolls_over_to_the_next_weekday(ctx, admin, servers, runner, sims,
                                                           hub_mqtt):
    now = utc(2026, 6, 12, 18, 0)  # a Friday
    run = runner(now)
    _sim, device = emonesp_device(admin, servers, run, sims, ctx)
    admin.client.post(f"/schedule/set.json?device={device['id']}",
                      json_body={"ready_by": "07:00", "period": 1800, "repeat": ["mon"],
                                 "on_completion": "smart"})
    run.tick(now)
    occ = ctx.schedules.get(device["id"]).occurrence
    assert datetime.fromtimestamp(occ.ready_by, LONDON).strftime("%a %H:%M") == "Mon 07:00"
    run.tick(occ.ready_by + 60)
    occ2 = ctx.schedules.get(device["id"]).occurrence
    assert occ2.ready_by == occ.ready_by + 7 * 86400
    assert ctx.schedules.get(device["id"]).definition.mode == "smart"


# -- Tasmota and OpenEVSE ------------------------------------------------------------------------

def test_tasmota_presence_power_and_button(ctx, admin, servers, runner, sims):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device_id = present_device(admin, servers, run, sims, ctx, "tasmota", "heater",
                                    SimTasmota, topic_key="topic")
    admin.client.post(f"/schedule/set.json?device={device_id}",
                      json_body={"ready_by": "07:00", "period": 3600, "mode": "on"})
    run.tick(now)
    assert sim.wait_for(lambda: sim.power)
    assert run.until(lambda: ctx.devices.state(device_id).get("power") is True)
    run.now = now + 60  # later than the command's answer: a change now is a person
    sim.press_button()
    assert run.until(lambda: ctx.schedules.get(device_id).definition.mode == "off")
    run.tick(now + 120)
    run.pump(0.3)
    assert sim.power is False  # not switched back on
    sim.mqtt.client.loop_stop()
    sim.mqtt.client.socket().close()  # network failure: the broker publishes the will
    assert run.until(lambda: ctx.devices.state(device_id).get("present") is False)


def test_openevse_announce_claim_and_override(ctx, admin, servers, runner, sims):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device_id = present_device(admin, servers, run, sims, ctx, "openevse", "car",
                                    SimOpenEvse)
    assert ctx.devices.get(device_id).type == "openevse"
    admin.client.post(f"/schedule/set.json?device={device_id}",
                      json_body={"ready_by": "07:00", "period": 3600, "mode": "on"})
    run.tick(now)
    assert sim.wait_for(lambda: sim.claim and sim.claim["state"] == "active")
    assert run.until(lambda: ctx.devices.state(device_id).get("power") is True)
    sim.user_override("disabled")
    assert run.until(lambda: ctx.schedules.get(device_id).definition.mode == "off")
    sim.drop()
    assert run.until(lambda: ctx.devices.state(device_id).get("present") is False)


def test_openevse_smart_schedule_switches_at_window_edges(ctx, admin, servers, runner, sims,
                                                          hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device_id = present_device(admin, servers, run, sims, ctx, "openevse", "car",
                                    SimOpenEvse)
    values = [10.0] * 48
    values[16] = 1.0  # 02:00-02:30 UTC
    send_profile(hub_mqtt, run, now, values)
    admin.client.post(f"/schedule/set.json?device={device_id}",
                      json_body={"ready_by": "07:00", "period": 1800})
    run.tick(now)
    assert sim.wait_for(lambda: sim.claim and sim.claim["state"] == "disabled")
    run.tick(utc(2026, 6, 11, 2, 0))
    assert sim.wait_for(lambda: sim.claim["state"] == "active")
    run.tick(utc(2026, 6, 11, 2, 30))
    assert sim.wait_for(lambda: sim.claim["state"] == "disabled")


# -- bad input -----------------------------------------------------------------------------------

def test_bad_device_messages_are_dropped_and_others_carry_on(ctx, admin, servers, runner, sims,
                                                             hub_mqtt, caplog):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device = emonesp_device(admin, servers, run, sims, ctx)
    bad = [
        (f"{sim.base}/out/state", b"{not json"),
        (f"{sim.base}/out/state", b'{"ctrlmode": "Explode"}'),
        (f"{sim.base}/out/state", b'["a", "list"]'),
        (f"{sim.base}/out/state", b'{"ctrlmode": "On", "timer": "99 99 99"}'),
        (f"{sim.base}/out/ctrlmode", b"\xff\xfe"),
        (f"{sim.base}/out/ctrlmode", b"x" * 100_000),
        ("openevse/announce/zz", b'{"state": "connected"}'),
        ("openevse/announce/zz", b'{"state": "connected", "mqtt": "emon/#"}'),
        ("tele/weird/LWT", b"Maybe"),
        ("stat/nobody/RESULT", b'{"POWER": "ON"}'),
        ("emon/thing/mystery/describe", b"toaster"),
        (PROFILE_TOPIC, b'{"start": 1, "interval": 1800, "values": [1]}'),
        (PROFILE_TOPIC, b'{"start": 1781110800, "interval": 1800, "values": []}'),
        (PROFILE_TOPIC, b'{"start": 1781110800, "interval": 7, "values": [1, 2]}'),
        (PROFILE_TOPIC, b'{"start": 1781110800, "interval": 1800, "values": [null, null]}'),
        (PROFILE_TOPIC, b"[]"),
    ]
    good_values = [5.0] * 48
    send_profile(hub_mqtt, run, now, good_values)
    for topic, payload in bad:
        run.service.on_message(topic, payload)  # must not raise
    assert [d.id for d in ctx.devices.list()] == [device["id"]]  # nothing unknown created
    assert run.service.profile._latest.start == now  # the good profile is kept
    assert "unknown EmonESP node type" in caplog.text and "profile refused" in caplog.text
    # The device still works.
    sim.press_button()
    assert run.until(lambda: ctx.devices.state(device["id"]).get("mode") == "on")


def test_flooding_device_is_cut_off_without_hurting_another(ctx, admin, servers, runner, sims):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    flood_acc = account(admin, "tasmota", "flood")
    calm_acc = account(admin, "tasmota", "calm")
    flood = SimTasmota(servers.mqtt_port, flood_acc["mqtt_user"], flood_acc["mqtt_password"],
                       flood_acc["topic"]).start()
    calm = SimTasmota(servers.mqtt_port, calm_acc["mqtt_user"], calm_acc["mqtt_password"],
                      calm_acc["topic"]).start()
    sims.extend([flood, calm])
    assert run.until(lambda: ctx.devices.state(calm_acc["device"]["id"]).get("present"))
    for n in range(2000):
        flood.mqtt.client.publish(f"tele/{flood.t}/STATE", json.dumps({"POWER": "ON", "n": n}))
    calm.press_button()
    assert run.until(lambda: ctx.devices.state(calm_acc["device"]["id"]).get("power") is True,
                     timeout=20)
    assert run.service.dropped.get(f"tasmota:{flood.t}", 0) > 1000


def test_schedule_api_rejects_bad_definitions(ctx, admin, servers, runner, sims):
    acc = account(admin, "tasmota", "lamp")
    device_id = acc["device"]["id"]
    cases = [
        ({"ready_by": "25:00", "period": 3600}, "hh:mm"),
        ({"ready_by": "07:00", "period": -5}, "period"),
        ({"ready_by": "07:00", "period": 3600, "repeat": [9]}, "repeat"),
        ({"ready_by": "07:00", "period": 3600, "mode": "turbo"}, "mode"),
        ({"ready_by": "07:00", "period": 3600, "once_on": "2020-01-01"}, "past"),
        ("not an object", "object"),
    ]
    for body, word in cases:
        res = admin.client.post(f"/schedule/set.json?device={device_id}", json_body=body)
        assert res.status == 400, (body, res.text)
        assert word in res.json()["message"].lower(), res.text
    assert admin.client.post("/schedule/set.json?device=999999",
                             json_body={"ready_by": "07:00", "period": 60}).status == 404


def test_device_templates_create_feeds(ctx, admin, servers, runner, sims, hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    hub_mqtt.publish("emon/plug77/describe", "smartplug")
    assert run.until(lambda: any(d.base_topic == "emon/plug77" for d in ctx.devices.list()))
    feeds = ctx.feeds.list(ctx.config.mqtt_user_id)
    power = [f for f in feeds if f["name"] == "power" and f["tag"] == "plug77"]
    assert len(power) == 1
    # The input appears with the first reading; the sweep links it to the template feed.
    from hub.input.readings import NodePost

    user = ctx.config.mqtt_user_id
    ctx.inputs.ingest(user, [NodePost("plug77", int(now), {"power": 40.0})])
    run.service.link_template_inputs()
    row = next(i for i in ctx.inputs.list(user) if i["nodeid"] == "plug77")
    assert row["processList"][0]["args"] == [power[0]["id"]]
    assert row["description"] == "Plug power"
    ctx.inputs.ingest(user, [NodePost("plug77", int(now) + 10, {"power": 55.0})])
    assert ctx.feeds.last(power[0]["id"])[1] == 55.0
    # Linked once: a process list the household empties later stays empty.
    ctx.inputs.set_processlist(user, row["id"], [])
    run.service.link_template_inputs()
    assert ctx.inputs.get(user, row["id"])["processList"] == []


def test_interruptible_run_is_reoptimised_for_what_is_left(ctx, admin, servers, runner, sims,
                                                           hub_mqtt):
    now = utc(2026, 6, 10, 18, 0)
    run = runner(now)
    sim, device_id = present_device(admin, servers, run, sims, ctx, "tasmota", "dryer",
                                    SimTasmota, topic_key="topic")
    values = [10.0] * 48
    values[16] = values[20] = 1.0  # 02:00-02:30 and 04:00-04:30 UTC
    send_profile(hub_mqtt, run, now, values)
    admin.client.post(f"/schedule/set.json?device={device_id}",
                      json_body={"ready_by": "07:00", "period": 3600, "interruptible": True})
    run.tick(now)
    windows = ctx.schedules.get(device_id).occurrence.windows
    assert [(w.start, w.end) for w in windows] == [
        (utc(2026, 6, 11, 2, 0), utc(2026, 6, 11, 2, 30)),
        (utc(2026, 6, 11, 4, 0), utc(2026, 6, 11, 4, 30))]
    run.tick(utc(2026, 6, 11, 2, 0))
    assert sim.wait_for(lambda: sim.power)
    run.tick(utc(2026, 6, 11, 2, 30))
    assert sim.wait_for(lambda: not sim.power)
    # Half is done; a new profile makes 03:00 the cheapest: the rest moves there.
    values2 = list(values)
    values2[18] = 0.1
    send_profile(hub_mqtt, run, now, values2)
    run.tick(utc(2026, 6, 11, 2, 31))
    occ = ctx.schedules.get(device_id).occurrence
    assert occ.remaining_s == 1800
    assert [(w.start, w.end) for w in occ.windows] == [
        (utc(2026, 6, 11, 3, 0), utc(2026, 6, 11, 3, 30))]


def test_announcements_cannot_grow_the_device_list_without_bound(ctx, runner, hub_mqtt,
                                                                 monkeypatch, caplog):
    import hub.worker.device.announce as service

    monkeypatch.setattr(service, "MAX_DEVICES", 3)
    run = runner(utc(2026, 6, 10, 18, 0))
    for n in range(10):
        hub_mqtt.publish(f"emon/node{n}/describe", "smartplug")
    run.pump(1.5)
    assert len(ctx.devices.list()) == 3
    assert "device limit of 3 reached" in caplog.text


def test_discovery_is_off_unless_configured(ctx, hub_config):
    from hub.config import load_config
    from hub.context import HubContext
    from hub.worker.device.service import DeviceService

    quiet = DeviceService(ctx, lambda *a, **k: None)
    assert quiet.broadcaster is None and quiet.mdns is None
    loud_config = load_config("/nonexistent.toml", environ={}, overrides={
        **dict(hub_config), "broadcast_enabled": True, "mdns_enabled": True})
    loud = DeviceService(HubContext(loud_config), lambda *a, **k: None)
    # Built but not ticked: this test must not broadcast on the machine's interfaces.
    assert loud.broadcaster is not None and loud.mdns is not None


def test_state_changes_are_published_as_events(ctx, admin, servers, runner, sims):
    run = runner(utc(2026, 6, 10, 18, 0))
    acc = account(admin, "tasmota", "fan")
    events = ctx.redis.pubsub()
    events.subscribe(ctx.keys.events)
    events.get_message(timeout=2)
    sim = SimTasmota(servers.mqtt_port, acc["mqtt_user"], acc["mqtt_password"],
                     acc["topic"]).start()
    sims.append(sim)
    sim.press_button()
    device_id = acc["device"]["id"]
    assert run.until(lambda: ctx.devices.state(device_id).get("power") is True)
    seen = []
    while (msg := events.get_message(timeout=0.5)) is not None:
        seen.append(json.loads(msg["data"]))
    events.close()
    states = [e for e in seen if e["event"] == "device_state"]
    # Online (LWT), then the button's RESULT; the repeated stat/POWER adds no event.
    assert states == [
        {"event": "device_state", "device_id": device_id, "present": True},
        {"event": "device_state", "device_id": device_id, "power": True, "mode": "on"}]


def test_a_device_paired_since_the_last_tick_is_claimed_not_duplicated(ctx, runner, admin):
    """The web pairs a device between two ticks of the worker; its describe comes at once."""
    run = runner(utc(2026, 6, 10, 18, 0))
    run.tick()  # the device table is loaded now, without the device
    ctx.pairing.request("192.0.2.30", name="plug")
    device = ctx.pairing.allow("192.0.2.30", admin.userid)
    ctx.pairing.request("192.0.2.30")  # the device fetches its account: active
    run.service.on_message(f"{device.base_topic}/plug/describe", b"smartplug")
    devices = ctx.devices.list()
    assert [(d.id, d.base_topic) for d in devices] == [(device.id, f"{device.base_topic}/plug")]
