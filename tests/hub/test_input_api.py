"""The emoncms input API over real HTTP: posting in every form, reading inputs back, process
lists, access levels and errors."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import make_account


def now() -> int:
    return int(time.time()) // 10 * 10


def test_post_answers_plain_ok_and_values_are_readable(client, admin):
    res = client.get("/input/post", {"apikey": admin.apikey_write, "node": "emontx",
                                     "json": "{power1:100,vrms:240.5}"})
    assert (res.status, res.text) == (200, "ok")
    assert res.headers["content-type"].startswith("text/plain")
    got = client.get("/input/get.json", {"apikey": admin.apikey_read}).json()
    assert got["emontx"]["power1"]["value"] == 100.0
    assert got["emontx"]["vrms"]["value"] == 240.5
    assert abs(got["emontx"]["power1"]["time"] - time.time()) < 5


def test_post_fulljson_answers_success_json(client, admin):
    t = now() - 60
    res = client.post("/input/post.json", {"apikey": admin.apikey_write, "node": "house",
                                           "fulljson": json.dumps({"P": 5, "time": t})})
    assert res.json() == {"success": True}
    assert client.get("/input/get/house/P", {"apikey": admin.apikey_read}).json() == {
        "time": t, "value": 5.0, "processList": []}


def test_post_node_in_path_csv_and_bearer_key(client, admin):
    res = client.post("/input/post/emonth", {"csv": "18.5,60"},
                      headers={"Authorization": f"Bearer {admin.apikey_write}"})
    assert res.text == "ok"
    node = client.get("/input/get/emonth", {"apikey": admin.apikey_read}).json()
    assert {k: v["value"] for k, v in node.items()} == {"1": 18.5, "2": 60.0}


def test_bulk_post_with_sentat(client, admin):
    t = now()
    data = json.dumps([[t - 20, "a", 1, 2], [t - 10, "a", 3, {"T": 4}], [t, "b", 5]])
    res = client.post("/input/bulk.json", {"apikey": admin.apikey_write, "data": data,
                                           "sentat": str(t)})
    assert res.text == "ok", res.text
    tree = client.get("/input/get.json", {"apikey": admin.apikey_read}).json()
    assert tree["a"]["1"]["value"] == 3.0 and tree["a"]["T"]["value"] == 4.0
    assert tree["b"]["1"]["value"] == 5.0


def test_input_list_set_and_delete(client, admin):
    client.post("/input/post", {"apikey": admin.apikey_write, "node": "n", "csv": "1,2"})
    listed = client.get("/input/list.json", {"apikey": admin.apikey_read}).json()
    assert [(i["nodeid"], i["name"], i["value"]) for i in listed] == [("n", "1", 1.0),
                                                                     ("n", "2", 2.0)]
    first, second = listed[0]["id"], listed[1]["id"]
    res = client.post("/input/set.json", {"apikey": admin.apikey_write, "inputid": first,
                                          "fields": json.dumps({"description": "kitchen"})})
    assert res.json()["input"]["description"] == "kitchen"
    bad = client.post("/input/set.json", {"apikey": admin.apikey_write, "inputid": first,
                                          "fields": json.dumps({"name": "x"})})
    assert bad.status == 400 and "only description" in bad.json()["message"]
    res = client.post("/input/delete.json", {"apikey": admin.apikey_write,
                                             "inputids": json.dumps([first, second])})
    assert res.json() == {"success": True, "deleted": 2}
    assert client.get("/input/list.json", {"apikey": admin.apikey_read}).json() == []


def test_process_list_set_get_reset_and_http_ingest_runs_it(client, admin, ctx):
    key = {"apikey": admin.apikey_write}
    feed = client.post("/feed/create.json", {**key, "name": "power", "interval": "10",
                                             "engine": "5"}).json()["feedid"]
    client.post("/input/post", {**key, "node": "n", "csv": "1"})
    input_id = client.get("/input/list.json", key).json()[0]["id"]
    plist = json.dumps([{"fn": "process__scale", "args": ["2"]},
                        {"fn": "process__log_to_feed", "args": [str(feed)]}])
    res = client.post("/input/process/set.json", {**key, "inputid": input_id,
                                                  "processlist": plist})
    assert res.status == 200, res.text
    got = client.get("/input/process/get.json", {**key, "inputid": input_id}).json()
    assert got[1] == {"fn": "process__log_to_feed", "args": [feed]}
    t = now() - 30
    client.post("/input/post", {**key, "node": "n", "csv": "21", "time": str(t)})
    assert ctx.feeds.last(feed) == (t, 42.0)
    value = client.get("/feed/value.json", {**key, "id": feed}).json()
    assert value == 42.0
    assert client.post("/input/process/reset.json", {**key, "inputid": input_id}).json() == {
        "success": True}
    assert client.get("/input/process/get.json", {**key, "inputid": input_id}).json() == []
    registry = client.get("/input/process/list.json", key).json()
    assert {"id": 1, "key": "process__log_to_feed"}.items() <= registry[0].items()


def test_process_set_errors_name_the_problem(client, admin, new_client):
    key = {"apikey": admin.apikey_write}
    client.post("/input/post", {**key, "node": "n", "csv": "1"})
    input_id = client.get("/input/list.json", key).json()[0]["id"]
    bob = make_account(new_client, "bob", by=admin.client)
    bobs = client.post("/feed/create.json", {"apikey": bob.apikey_write, "name": "b",
                                             "interval": "10", "engine": "5"}).json()["feedid"]

    def set_list(steps) -> tuple[int, str]:
        res = client.post("/input/process/set.json", {**key, "inputid": input_id,
                                                      "processlist": json.dumps(steps)})
        return res.status, res.json()["message"]

    assert set_list([{"fn": "process__nope", "args": []}])[0] == 400
    assert set_list([{"fn": "process__log_to_feed", "args": [9999]}]) == (
        404, "step 1 (log_to_feed): feed 9999 does not exist")
    # Another user's feed answers exactly like a missing one (issue 11 #5: 403 leaked it).
    assert set_list([{"fn": "process__log_to_feed", "args": [bobs]}]) == (
        404, f"step 1 (log_to_feed): feed {bobs} does not exist")
    # bob cannot see or change admin's input
    res = client.get("/input/process/get.json", {"apikey": bob.apikey_write,
                                                 "inputid": input_id})
    assert res.status == 404


@pytest.mark.parametrize(("params", "words"), [
    ({"node": "n"}, "fulljson=, json=, csv= or data="),
    ({"node": "n", "csv": "1,abc"}, "must be a number"),
    ({"node": "n", "fulljson": '{"a": NaN}'}, "NaN is not a number"),
    ({"node": "n", "fulljson": '{"a": {"b": 1}}'}, "nested"),
    ({"node": "n/x", "csv": "1"}, "node"),
    ({"node": "n", "csv": "1", "time": "99999999999"}, "future"),
    ({"node": "n", "csv": "1", "cb": "1"}, "not supported"),
])
def test_bad_posts_are_400_with_a_message(client, admin, params, words):
    res = client.post("/input/post", {"apikey": admin.apikey_write, **params})
    assert res.status == 400
    assert words in res.json()["message"]


def test_node_limit(client, admin, ctx):
    limit = ctx.config.max_nodes_per_user
    rows = [[0, f"node{i}", 1] for i in range(limit)]
    assert client.post("/input/bulk", {"apikey": admin.apikey_write, "data": json.dumps(rows),
                                       "offset": "0"}).text == "ok"
    res = client.post("/input/post", {"apikey": admin.apikey_write, "node": "onemore",
                                      "csv": "1"})
    assert res.status == 400 and f"limit of {limit} nodes" in res.json()["message"]
    # existing nodes still post fine
    assert client.post("/input/post", {"apikey": admin.apikey_write, "node": "node0",
                                       "csv": "2"}).text == "ok"


def test_access_levels(client, admin):
    post = {"node": "n", "csv": "1"}
    assert client.post("/input/post", post).status == 401
    assert client.post("/input/post", {**post, "apikey": admin.apikey_read}).status == 403
    assert client.get("/input/list.json").status == 401
    assert client.get("/input/list.json", {"apikey": admin.apikey_read}).status == 200
    assert client.post("/input/delete.json", {"apikey": admin.apikey_read,
                                              "inputid": "1"}).status == 403
    # a logged-in session may do everything
    assert admin.client.post("/input/post", post).text == "ok"


def test_unknown_input_and_node(client, admin):
    key = {"apikey": admin.apikey_read}
    assert client.get("/input/get/nope", key).status == 404
    assert client.get("/input/get/nope/x", key).status == 404
    assert client.get("/input/process/get.json", {**key, "inputid": 77}).status == 404


# --- issue 11 #11: nothing dropped behind a success ---------------------------------------

@pytest.mark.parametrize("value", ["1e39", "-3.5e38"])
def test_post_of_a_value_no_feed_can_hold_is_refused(client, admin, value):
    res = client.post("/input/post.json", {"apikey": admin.apikey_write, "node": "big",
                                           "fulljson": json.dumps({"P": float(value)})})
    assert res.status == 400 and "beyond what a feed can store" in res.json()["message"]
    assert client.get("/input/get.json", {"apikey": admin.apikey_read}).json() == {}


def test_post_into_a_deleted_feed_says_what_was_not_stored(client, admin, ctx):
    key = {"apikey": admin.apikey_write}
    assert client.post("/input/post", {**key, "node": "n", "csv": "1"}).text == "ok"
    input_id = client.get("/input/list.json", {"apikey": admin.apikey_read}).json()[0]["id"]
    feed = ctx.feeds.create(admin.userid, "gone", interval=10).id
    res = client.post("/input/process/set.json", {**key, "inputid": input_id,
                                                  "processlist": json.dumps(
                                                      [{"fn": "log_to_feed", "args": [feed]}])})
    assert res.status == 200, res.text
    ctx.feeds.delete(feed)
    res = client.post("/input/post", {**key, "node": "n", "csv": "2"})
    assert res.status == 400, res.text
    message = res.json()["message"]
    assert "1 feed points were not" in message and f"feed {feed}" in message
    # the input value itself was stored, and the answer says so
    assert "1 readings stored as input values" in message
    assert client.get("/input/get/n/1", {"apikey": admin.apikey_read}).json()["value"] == 2.0
