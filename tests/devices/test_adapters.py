"""Adapters as protocol translators: what each firmware is sent and how its reports read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from hub.device.adapters import Command
from hub.device.adapters.openevse import parse_announce
from hub.device.adapters.registry import adapter_for
from hub.device.errors import DeviceMessageError, UnknownDeviceType

TZ = ZoneInfo("Europe/London")


@dataclass
class Dev:
    base_topic: str
    node_type: str = ""


def test_emonesp_window_is_utc_timer_then_timer_mode():
    esp = adapter_for("emonesp")
    # 01:30-02:30 BST on 2026-06-11 = 00:30-01:30 UTC.
    msgs = esp.command(Dev("emon/x/plug"), Command("window", 1781137800, 1781141400), TZ)
    assert [(m.topic, m.payload) for m in msgs] == [
        ("emon/x/plug/in/timer", "0030 0130 0000 0000"),
        ("emon/x/plug/in/ctrlmode", "Timer")]
    assert len(msgs[0].payload) == 19  # the firmware ignores other lengths


def test_emonesp_window_of_a_day_or_more_is_sent_as_on():
    msgs = adapter_for("emonesp").command(Dev("b"), Command("window", 0, 86_400), TZ)
    assert [(m.topic, m.payload) for m in msgs] == [("b/in/ctrlmode", "On")]


def test_emonesp_reports():
    esp = adapter_for("emonesp")
    state = esp.parse(Dev("b"), "out/state",
                      b'{"ip":"192.0.2.3","ctrlmode":"Timer","timer":"330 500 0 0","vout":"0"}')
    assert state.mode == "timer" and state.fields["timer_utc"][:2] == ["03:30", "05:00"]
    button = esp.parse(Dev("b"), "out/ctrlmode", b"On")
    assert button.manual and button.mode == "on" and button.power is True
    assert esp.parse(Dev("b"), "in/ctrlmode", b"On") is None  # our own command echoed
    for sub, bad in [("out/state", b"{"), ("out/state", b'{"ctrlmode":"Maybe"}'),
                     ("out/ctrlmode", b"Sideways"), ("out/timer", b"2500 0100"),
                     ("out/state", b"x" * 5000)]:
        with pytest.raises(DeviceMessageError):
            esp.parse(Dev("b"), sub, bad)


def test_openevse_claims_and_reports():
    evse = adapter_for("openevse")
    on = evse.command(Dev("emon/evse"), Command("on"), TZ)
    assert on[0].topic == "emon/evse/claim/set"
    assert json.loads(on[0].payload) == {"state": "active", "auto_release": False}
    assert json.loads(evse.command(Dev("e"), Command("off"), TZ)[0].payload)["state"] == \
        "disabled"
    assert evse.parse(Dev("e"), "state", b"3").power is True
    override = evse.parse(Dev("e"), "override", b'{"state":"disabled"}')
    assert override.manual and override.mode == "off"
    assert evse.parse(Dev("e"), "claim", b'{"state":"active"}').manual is False
    with pytest.raises(DeviceMessageError):
        evse.parse(Dev("e"), "state", b"charging")
    assert parse_announce(b'{"state":"connected","id":"a","mqtt":"emon/evse","name":"n"}') == \
        ("emon/evse", True, "n")
    with pytest.raises(DeviceMessageError):
        parse_announce(b'{"state":"connected"}')


def test_tasmota_power_and_presence():
    tas = adapter_for("tasmota")
    assert [(m.topic, m.payload) for m in tas.command(Dev("tas-1"), Command("on"), TZ)] == [
        ("cmnd/tas-1/POWER", "ON")]
    assert tas.query(Dev("tas-1"))[0].payload == ""
    assert tas.parse(Dev("t"), "stat/RESULT", b'{"POWER":"OFF"}').power is False
    assert tas.parse(Dev("t"), "tele/LWT", b"Offline").present is False
    assert tas.parse(Dev("t"), "tele/STATE", b'{"Wifi":{}}').power is None
    with pytest.raises(DeviceMessageError):
        tas.parse(Dev("t"), "stat/POWER", b"PERHAPS")


def test_unknown_type_is_a_clear_error():
    with pytest.raises(UnknownDeviceType, match="toaster"):
        adapter_for("toaster")


def test_command_validation():
    with pytest.raises(ValueError):
        Command("window", 10, 5)
    with pytest.raises(ValueError):
        Command("explode")
