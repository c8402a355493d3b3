"""Parsing every emoncms input form, and refusing hostile ones with a message that helps."""

from __future__ import annotations

import json

import pytest

from hub.input import readings as ingest
from hub.input.readings import (
    BadName,
    BadPayload,
    BadTime,
    BadValue,
    NodePost,
    TooMany,
    parse_bulk,
    parse_mqtt,
    parse_post,
    parse_profile,
)

NOW = 1_750_000_000.0


def mqtt(topic: str, payload: str | bytes) -> list[NodePost]:
    return parse_mqtt(topic, payload.encode() if isinstance(payload, str) else payload,
                      "emon", NOW)


# --- MQTT forms -----------------------------------------------------------------------------

def test_mqtt_value_per_topic_uses_receive_time():
    assert mqtt("emon/emontx4/P1", "123.5") == [NodePost("emontx4", int(NOW), {"P1": 123.5})]


def test_mqtt_deeper_topics_join_with_underscore():
    assert mqtt("emon/heatpump/flow/temp", " 41 ") == [
        NodePost("heatpump", int(NOW), {"flow_temp": 41.0})]


def test_mqtt_csv_on_node_topic_names_from_zero():
    assert mqtt("emon/emonth", "18.2,55,3.1")[0].values == {"0": 18.2, "1": 55.0, "2": 3.1}


def test_mqtt_json_with_case_insensitive_time():
    posts = mqtt("emon/emonpi2", json.dumps({"P1": 10, "E1": "12.5", "Time": NOW - 60}))
    assert posts == [NodePost("emonpi2", int(NOW - 60), {"P1": 10.0, "E1": 12.5})]


def test_mqtt_json_time_may_be_iso_8601():
    post = mqtt("emon/n", '{"a": 1, "time": "2025-06-15T15:06:40Z"}')[0]
    assert post.time == 1_750_000_000


def test_mqtt_json_on_sub_topic_prefixes_names_and_unboxes():
    post = mqtt("emon/n/ct", '{"power": {"name": "kitchen", "value": 5}, "v": true}')[0]
    assert post.values == {"ct_power_kitchen": 5.0, "ct_v": 1.0}


def test_mqtt_readings_of_a_device_are_still_inputs():
    assert mqtt("emon/evse-0a1b/amp", "16.5")[0].values == {"amp": 16.5}


@pytest.mark.parametrize(("topic", "payload", "error", "words"), [
    ("emon/n/p", "nan", BadValue, "must be a number"),
    ("emon/n/p", "1e999", BadValue, "finite"),
    ("emon/n/p", "0x10", BadValue, "must be a number"),
    ("emon/n/p", "1_000", BadValue, "must be a number"),
    ("emon/n", '{"p": NaN}', BadValue, "NaN is not a number"),
    ("emon/n", '{"p": Infinity}', BadValue, "Infinity"),
    ("emon/n", '{"p": null}', BadValue, "got null"),
    ("emon/n", '{"p": [1, 2]}', BadPayload, "lists"),
    ("emon/n", '{"p": {"q": {"r": 1}}}', BadPayload, "nested"),
    ("emon/n", '{"p": 1', BadPayload, "not valid JSON"),
    ("emon/n", "", BadPayload, "empty"),
    ("emon/n", b"\xff\xfe", BadPayload, "UTF-8"),
    ("emon/n", "[" * 5000 + "]" * 5000, BadPayload, "not valid JSON"),
    ("emon/n", "1" * (ingest.MAX_PAYLOAD_BYTES + 1), BadPayload, "bytes is over"),
    ("emon/n", ",".join(["1"] * (ingest.MAX_INPUTS_PER_POST + 1)), TooMany, "at most"),
    ("emon/n", '{"time": 1, "p": 1}', BadTime, "days in the past"),
    ("emon/n", '{"time": 9999999999, "p": 1}', BadTime, "future"),
    ("emon/n", '{"time": "yesterday", "p": 1}', BadTime, "ISO 8601"),
    ("emon/n", '{"time": 1750000000}', BadPayload, "no inputs"),
    ("emon/n", '{"bad/name": 1}', BadName, "may only hold"),
    ("emon/n", '{"' + "x" * 65 + '": 1}', BadName, "longer than 64"),
    ("emon/" + "n" * 65 + "/p", "1", BadName, "node"),
    ("emon/n$/p", "1", BadName, "node"),
    ("emon//p", "1", BadName, "node is empty"),
    ("emon", "1", BadPayload, "emon/<node>"),
    ("other/n/p", "1", BadPayload, "emon/<node>"),
])
def test_mqtt_bad_payloads_are_refused_with_a_reason(topic, payload, error, words):
    with pytest.raises(error, match=words):
        mqtt(topic, payload)


def test_all_errors_share_one_base_class():
    for cls in (BadName, BadPayload, BadTime, BadValue, TooMany):
        assert issubclass(cls, ingest.IngestError)


# --- HTTP input/post ------------------------------------------------------------------------

def test_post_fulljson_with_time_key_and_time_param():
    body = json.dumps({"power": 100, "time": NOW - 10})
    assert parse_post({"node": "house", "fulljson": body}, now=NOW) == NodePost(
        "house", int(NOW - 10), {"power": 100.0})
    # the time parameter wins over the key, as in emoncms
    post = parse_post({"node": "house", "fulljson": body, "time": str(NOW - 99)}, now=NOW)
    assert post.time == int(NOW - 99)


def test_post_legacy_json_and_csv_name_bare_values_from_one():
    assert parse_post({"node": "a", "json": "{power:100,temp:21.5}"}, now=NOW).values == {
        "power": 100.0, "temp": 21.5}
    assert parse_post({"node": "a", "csv": "1,2.5,-3"}, now=NOW).values == {
        "1": 1.0, "2": 2.5, "3": -3.0}
    assert parse_post({"node": "a", "data": "7,e:8"}, now=NOW).values == {"1": 7.0, "e": 8.0}


def test_post_node_from_path_or_default_zero():
    assert parse_post({"csv": "1"}, node="emontx", now=NOW).node == "emontx"
    assert parse_post({"csv": "1"}, now=NOW).node == "0"


@pytest.mark.parametrize(("params", "error", "words"), [
    ({"node": "a"}, BadPayload, "fulljson=, json=, csv= or data="),
    ({"node": "a", "fulljson": '{"a": {"b": 1}}'}, BadPayload, "nested"),
    ({"node": "a", "fulljson": "[1, 2]"}, BadPayload, "must be an object"),
    ({"node": "a", "fulljson": '{"a": "x"}'}, BadValue, "must be a number"),
    ({"node": "a", "csv": "1,abc"}, BadValue, "must be a number"),
    ({"node": "a", "csv": "1,null"}, BadValue, "must be a number"),
    ({"node": "a", "json": "a:1:2"}, BadPayload, "format error"),
    ({"node": "a", "csv": "1", "time": "soon"}, BadTime, "ISO 8601"),
    ({"node": "a", "csv": "1", "time": "1e30"}, BadTime, "future"),
    ({"node": "a/b", "csv": "1"}, BadName, "node"),
])
def test_post_bad_params(params, error, words):
    with pytest.raises(error, match=words):
        parse_post(params, now=NOW)


# --- HTTP input/bulk ------------------------------------------------------------------------

def test_bulk_sentat_cancels_clock_skew_like_emonhub():
    # emonhub sends absolute times and its own clock as sentat; the hub clock is 30 s ahead
    device_now = NOW - 30
    data = json.dumps([[device_now - 20, "emontx", 1, 2], [device_now - 10, "emontx", 3,
                                                            {"T": 4}]])
    posts = parse_bulk(data, {"sentat": str(device_now)}, now=NOW)
    assert posts == [NodePost("emontx", int(NOW - 20), {"1": 1.0, "2": 2.0}),
                     NodePost("emontx", int(NOW - 10), {"1": 3.0, "T": 4.0})]


def test_bulk_offset_time_and_default_reference():
    data = json.dumps([[0, "a", 1], [5, "b", 2]])
    assert [p.time for p in parse_bulk(data, {"offset": "5"}, now=NOW)] == [NOW - 5, NOW]
    assert [p.time for p in parse_bulk(data, {"time": str(NOW - 100)}, now=NOW)] == [
        NOW - 100, NOW - 95]
    # no reference: the last row is "now"
    assert [p.time for p in parse_bulk(data, {}, now=NOW)] == [NOW - 5, NOW]


def test_bulk_skips_rows_without_values():
    assert parse_bulk(json.dumps([[0, "a"], [1, "b", 2]]), {}, now=NOW)[0].node == "b"


@pytest.mark.parametrize(("data", "params", "error", "words"), [
    ('{"a": 1}', {}, BadPayload, "list of"),
    ("[1, 2]", {}, BadPayload, "each bulk row"),
    ('[["x", "a", 1]]', {}, BadTime, "numeric time"),
    ('[[0, "a", 1]]', {"sentat": "abc"}, BadTime, "must be numbers"),
    ('[[0, "a", "v"]]', {}, BadValue, "must be a number"),
    ('[[0, {"n": 1}, 1]]', {}, BadName, "node must be text"),
    ('[[0, "a", 1]]', {"time": "1"}, BadTime, "past"),
    (json.dumps([[0, "a", 1]] * (ingest.MAX_BULK_ROWS + 1)), {}, TooMany, "bulk rows"),
])
def test_bulk_bad_data(data, params, error, words):
    with pytest.raises(error, match=words):
        parse_bulk(data, params, now=NOW)


# --- profiles -------------------------------------------------------------------------------

def test_profile_topics_and_payload():
    body = json.dumps({"start": NOW, "interval": 1800, "values": [1.5, None, 2]})
    profile = parse_profile("cydynni/profile/hydro", body.encode(), now=NOW)
    assert (profile.kind, profile.start, profile.interval, profile.values) == (
        "hydro", int(NOW), 1800, [1.5, None, 2.0])


@pytest.mark.parametrize(("topic", "doc", "words"), [
    ("cydynni/profile/solar", {"start": NOW, "interval": 1800, "values": [1]}, "unknown"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 1800}, "exactly"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 1800, "values": [1], "x": 1},
     "exactly"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 10, "values": [1]}, "60 to 86400"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 1.5, "values": [1]}, "whole"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 1800, "values": []}, "list of 1"),
    ("cydynni/profile/hydro", {"start": NOW, "interval": 1800, "values": ["x"]},
     "must be a number"),
    ("cydynni/profile/hydro", {"start": NOW + 30 * 86400, "interval": 1800, "values": [1]},
     "future"),
    ("cydynni/profile/community", {"start": NOW, "interval": 60,
                                   "values": [1] * (ingest.PROFILE_MAX_VALUES + 1)},
     "list of 1"),
])
def test_profile_bad(topic, doc, words):
    with pytest.raises(ingest.IngestError, match=words):
        parse_profile(topic, json.dumps(doc).encode(), now=NOW)
