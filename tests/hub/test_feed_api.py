"""Feed API over HTTP against a real cheroot server, MariaDB, Redis and PHPFina files:
every route, its parameter validation, CSV, raw export bytes and public feeds."""

from __future__ import annotations

import json
import struct

import pytest

from tests.conftest import make_account

T0 = 1_700_000_000  # slot-aligned for 10 s feeds; 2023-11-14 22:13:20 UTC


@pytest.fixture
def feed(admin, client) -> int:
    """A 10 s feed of the admin with points at T0, T0+10, T0+20 (in the buffer)."""
    res = client.get("/feed/create.json", {"apikey": admin.apikey_write, "name": "use",
                                           "tag": "house", "options": '{"interval":10}',
                                           "unit": "W"})
    assert res.status == 200, res.text
    feed_id = res.json()["feedid"]
    res = client.post("/feed/post.json", {"apikey": admin.apikey_write, "id": feed_id,
                                          "data": json.dumps([[T0, 1], [T0 + 10, 2],
                                                              [T0 + 20, 3]])})
    assert res.json() == {"success": True, "points": 3}
    return feed_id


def get(client, path, key, **params):
    return client.get(path, {"apikey": key, **params} if key else params)


# -- create, list, get, set, delete --------------------------------------------------------

def test_create_answers_like_emoncms_and_refuses_duplicates(admin, client):
    res = get(client, "/feed/create.json", admin.apikey_write, name="solar", tag="pv",
              engine=5, options='{"interval": 60}')
    assert res.status == 200
    body = res.json()
    assert body["success"] is True and body["result"] is True and body["feedid"] >= 1
    again = get(client, "/feed/create.json", admin.apikey_write, name="solar", tag="pv")
    assert again.status == 409 and "already exists" in again.json()["message"]


@pytest.mark.parametrize("params,fragment", [
    ({}, "missing parameter 'name'"),
    ({"name": "bad;name"}, "name must be"),
    ({"name": "x", "engine": 2}, "only 5 (PHPFina)"),
    ({"name": "x", "engine": "five"}, "'engine' must be an integer"),
    ({"name": "x", "options": "{"}, "'options' is not valid JSON"),
    ({"name": "x", "options": "[10]"}, "must be a JSON object"),
    ({"name": "x", "options": '{"interval": 0}'}, "below the minimum"),
    ({"name": "x", "options": '{"interval": "ten"}'}, "interval must be an integer"),
    ({"name": "x", "options": '{"interval": 10, "x": 1}'}, "unknown options"),
    ({"name": "x", "unit": "u" * 17}, "unit must be"),
])
def test_create_validates(admin, client, params, fragment):
    res = get(client, "/feed/create.json", admin.apikey_write, **params)
    assert res.status == 400, res.text
    assert res.json()["success"] is False and fragment in res.json()["message"]


def test_list_with_meta_counts_unflushed_points(admin, client, feed):
    (row,) = get(client, "/feed/list.json", admin.apikey_read, meta=1).json()
    assert row["id"] == feed and row["name"] == "use" and row["tag"] == "house"
    assert row["userid"] == admin.userid and row["engine"] == 5 and row["unit"] == "W"
    assert (row["time"], row["value"]) == (T0 + 20, 3.0)
    assert (row["start_time"], row["end_time"], row["npoints"], row["interval"]) == \
        (T0, T0 + 20, 3, 10)
    assert row["size"] == 16  # nothing flushed yet
    plain = get(client, "/feed/list.json", admin.apikey_read).json()[0]
    assert "npoints" not in plain


def test_get_getmeta_getid(admin, client, feed):
    row = get(client, "/feed/get.json", admin.apikey_read, id=feed).json()
    assert row["name"] == "use" and row["public"] is False and row["interval"] == 10
    assert get(client, "/feed/get.json", admin.apikey_read, id=feed, field="unit").json() == "W"
    bad = get(client, "/feed/get.json", admin.apikey_read, id=feed, field="password")
    assert bad.status == 400 and "'field' must be one of" in bad.json()["message"]
    assert get(client, "/feed/aget.json", admin.apikey_read, id=feed).json()["id"] == feed
    meta = get(client, "/feed/getmeta.json", admin.apikey_read, id=feed).json()
    assert meta == {"interval": 10, "start_time": T0, "npoints": 3, "end_time": T0 + 20}
    assert get(client, "/feed/getid.json", admin.apikey_read, name="use",
               tag="house").json() == feed
    missing = get(client, "/feed/getid.json", admin.apikey_read, name="nope")
    assert missing.status == 404


def test_set_fields(admin, client, feed):
    res = get(client, "/feed/set.json", admin.apikey_write, id=feed,
              fields=json.dumps({"name": "use2", "unit": "kW", "public": 1}))
    assert res.status == 200, res.text
    assert res.json()["feed"]["public"] is True and res.json()["feed"]["name"] == "use2"
    for fields, fragment in [("{}", "non-empty"), ('{"engine": 2}', "cannot be set"),
                             ('{"name": 5}', "must be a string"), ("nope", "not valid JSON"),
                             ('{"public": "maybe"}', "public must be")]:
        res = get(client, "/feed/set.json", admin.apikey_write, id=feed, fields=fields)
        assert res.status == 400 and fragment in res.json()["message"], (fields, res.text)


def test_delete(admin, client, feed, hub_config):
    assert get(client, "/feed/delete.json", admin.apikey_write, id=feed).status == 200
    assert get(client, "/feed/get.json", admin.apikey_read, id=feed).status == 404
    assert not (hub_config.feed_dir / f"{feed}.dat").exists()
    assert get(client, "/feed/delete.json", admin.apikey_write, id=feed).status == 404


@pytest.mark.parametrize("feed_id", ["abc", "0", "-3", "1.5x"])
def test_bad_feed_id_is_400(admin, client, feed_id):
    res = get(client, "/feed/get.json", admin.apikey_read, id=feed_id)
    assert res.status == 400 and "'id'" in res.json()["message"]


def test_missing_feed_is_404(admin, client):
    res = get(client, "/feed/value.json", admin.apikey_read, id=999)
    assert res.status == 404 and res.json() == {"success": False,
                                                "message": "feed 999 does not exist"}


# -- values --------------------------------------------------------------------------------

def test_value_timevalue_fetch(admin, client, feed):
    assert get(client, "/feed/value.json", admin.apikey_read, id=feed).json() == 3.0
    assert get(client, "/feed/value.json", admin.apikey_read, id=feed,
               time=T0 + 11).json() == 2.0
    assert get(client, "/feed/timevalue.json", admin.apikey_read, id=feed).json() == \
        {"time": T0 + 20, "value": 3.0}
    assert get(client, "/feed/fetch.json", admin.apikey_read,
               ids=f"{feed},999").json() == [3.0, False]
    assert get(client, "/feed/fetch.json", admin.apikey_read, ids="1,x").status == 400


def test_value_of_empty_feed_is_null(admin, client):
    feed_id = get(client, "/feed/create.json", admin.apikey_write, name="e").json()["feedid"]
    assert get(client, "/feed/value.json", admin.apikey_read, id=feed_id).json() is None
    assert get(client, "/feed/timevalue.json", admin.apikey_read, id=feed_id).json() == \
        {"time": None, "value": None}


# -- writes --------------------------------------------------------------------------------

def test_single_post_insert_update_and_join(admin, client, feed):
    key = admin.apikey_write
    assert get(client, "/feed/insert.json", key, id=feed, time=T0 + 30, value=4).status == 200
    assert get(client, "/feed/update.json", key, id=feed, time=T0 + 10, value=9).status == 200
    res = client.post("/feed/post.json", {"apikey": key, "id": feed, "time": T0 + 70,
                                          "value": 10, "join": "join"})
    assert res.status == 200
    rows = get(client, "/feed/data.json", admin.apikey_read, id=feed, start=T0,
               end=T0 + 70, interval=10, timeformat="unix").json()
    assert rows == [[T0, 1.0], [T0 + 10, 9.0], [T0 + 20, 3.0], [T0 + 30, 4.0], [T0 + 40, 5.5],
                    [T0 + 50, 7.0], [T0 + 60, 8.5], [T0 + 70, 10.0]]


def test_post_without_time_uses_now(admin, client, feed, ctx):
    assert get(client, "/feed/post.json", admin.apikey_write, id=feed, value=42).status == 200
    t, v = ctx.feeds.last(feed)
    assert v == 42.0 and t > T0


@pytest.mark.parametrize("params,fragment", [
    ({}, "missing parameter 'value'"),
    ({"value": "abc"}, "'value' must be a number"),
    ({"value": "nan"}, "finite"),
    ({"value": 1, "time": "yesterday"}, "'time' must be a number"),
    ({"value": 1, "time": 4_000_000_000}, "in the future"),
    ({"value": 1e39, "time": T0}, "float32"),
    ({"data": "[[1,2],"}, "not valid JSON"),
    ({"data": "[]"}, "non-empty"),
    ({"data": "[[1,2,3]]"}, "pair"),
    ({"data": '[[1700000000, "x"]]'}, "value must be a number"),
    ({"data": "[[-1, 2]]"}, "positive unix time"),
    ({"value": 1, "time": T0, "join": "maybe"}, "'join' must be"),
])
def test_post_validates_and_stores_nothing(admin, client, feed, ctx, params, fragment):
    res = get(client, "/feed/post.json", admin.apikey_write, id=feed, **params)
    assert res.status == 400, res.text
    assert fragment in res.json()["message"]
    assert len(ctx.feeds.buffer.pending(feed)) == 3  # only the fixture's points


def test_session_writes_need_post(admin, client, feed):
    res = admin.client.get("/feed/post.json", {"id": feed, "time": T0, "value": 1})
    assert res.status == 403 and "POST" in res.json()["message"]
    res = admin.client.post("/feed/post.json", {"id": feed, "time": T0, "value": 1})
    assert res.status == 200


# -- data ----------------------------------------------------------------------------------

def test_data_defaults_to_unixms_and_merges_the_buffer(admin, client, feed):
    res = get(client, "/feed/data.json", admin.apikey_read, id=feed, start=T0, end=T0 + 20,
              interval=10)
    assert res.status == 200 and res.headers["content-type"] == "application/json"
    assert res.json() == [[T0 * 1000, 1.0], [(T0 + 10) * 1000, 2.0], [(T0 + 20) * 1000, 3.0]]


def test_data_same_after_flush(admin, client, feed, ctx):
    before = get(client, "/feed/data.json", admin.apikey_read, id=feed, start=T0,
                 end=T0 + 30, interval=10).json()
    ctx.feeds.flush()
    after = get(client, "/feed/data.json", admin.apikey_read, id=feed, start=T0,
                end=T0 + 30, interval=10).json()
    assert before == after and after[-1] == [(T0 + 30) * 1000, None]


@pytest.mark.parametrize("params,expected", [
    ({"interval": 20, "average": 1, "timeformat": "unix"}, [[T0, 1.5], [T0 + 20, 3.0]]),
    ({"interval": 10, "skipmissing": 1, "end": T0 + 40, "timeformat": "unix"},
     [[T0, 1.0], [T0 + 10, 2.0], [T0 + 20, 3.0]]),
    ({"interval": 10, "delta": 1, "timeformat": "unix", "end": T0 + 10},
     [[T0, 1.0], [T0 + 10, 1.0]]),
    ({"interval": 10, "timeformat": "notime"}, [1.0, 2.0, 3.0]),
    ({"interval": 10, "timeformat": "iso8601", "timezone": "UTC", "end": T0 + 1},
     [["2023-11-14T22:13:20+00:00", 1.0]]),
    ({"interval": 10, "timeformat": "excel", "timezone": "Europe/London", "end": T0 + 1},
     [["14/11/2023 22:13:20", 1.0]]),
    ({"interval": 3, "timeformat": "unix", "end": T0 + 6},
     [[T0, 1.0], [T0 + 3, 1.0], [T0 + 6, 1.0]]),  # limitinterval defaults to 0, as emoncms
    ({"interval": 3, "limitinterval": 1, "timeformat": "unix", "end": T0 + 6},
     [[T0, 1.0]]),
    ({"start": T0 * 1000, "end": (T0 + 10) * 1000, "interval": "original",
      "timeformat": "unix"}, [[T0, 1.0], [T0 + 10, 2.0]]),  # milliseconds accepted
])
def test_data_options(admin, client, feed, params, expected):
    query = {"id": feed, "start": T0, "end": T0 + 20, **params}
    res = get(client, "/feed/data.json", admin.apikey_read, **query)
    assert res.status == 200, res.text
    assert res.json() == pytest.approx(expected) if "notime" in str(params) else \
        res.json() == expected


def test_data_dp_rounds(admin, client, ctx):
    feed_id = get(client, "/feed/create.json", admin.apikey_write, name="p").json()["feedid"]
    ctx.feeds.insert(feed_id, T0, 1.23456)
    rows = get(client, "/feed/data.json", admin.apikey_read, id=feed_id, start=T0, end=T0,
               interval=10, dp=2, timeformat="unix")
    # start == end is refused by the engine: end must be after start
    assert rows.status == 400
    rows = get(client, "/feed/data.json", admin.apikey_read, id=feed_id, start=T0,
               end=T0 + 1, interval=10, dp=2, timeformat="unix").json()
    assert rows == [[T0, 1.23]]


def test_data_daily_in_a_timezone_across_dst(admin, client, ctx):
    feed_id = get(client, "/feed/create.json", admin.apikey_write, name="d",
                  options='{"interval":3600}').json()["feedid"]
    start = 1_711_756_800  # 2024-03-30 00:00 Europe/London (GMT); clocks go forward on 31st
    hours = 24 + 23 + 24  # local days of 24, 23 and 24 hours
    ctx.feeds.insert_many(feed_id, [start + 3600 * h for h in range(hours)],
                          [float(h) for h in range(hours)])
    rows = get(client, "/feed/data.json", admin.apikey_read, id=feed_id, start=start,
               end=start + 47 * 3600, interval="daily", timezone="Europe/London",
               timeformat="unix", average=1).json()
    # the 31st is 23 hours long: 00:00 GMT to 00:00 BST
    assert rows == [[start, 11.5], [start + 86400, 35.0], [start + 47 * 3600, 58.5]]


def test_multi_feed_data(admin, client, feed):
    other = get(client, "/feed/create.json", admin.apikey_write, name="b").json()["feedid"]
    get(client, "/feed/post.json", admin.apikey_write, id=other, time=T0 + 10, value=7)
    res = get(client, "/feed/data.json", admin.apikey_read, ids=f"{feed},{other}", start=T0,
              end=T0 + 10, interval=10, timeformat="unix", average="0,1")
    assert res.json() == [{"feedid": feed, "data": [[T0, 1.0], [T0 + 10, 2.0]]},
                          {"feedid": other, "data": [[T0, None], [T0 + 10, 7.0]]}]
    bad = get(client, "/feed/data.json", admin.apikey_read, ids=f"{feed},{other}", start=T0,
              end=T0 + 10, average="0,1,1")
    assert bad.status == 400 and "one 0/1 per feed" in bad.json()["message"]
    missing = get(client, "/feed/data.json", admin.apikey_read, ids=f"{feed},999", start=T0,
                  end=T0 + 10)
    assert missing.status == 404 and "999" in missing.json()["message"]


@pytest.mark.parametrize("params,fragment", [
    ({"end": T0 + 10}, "missing parameter 'start'"),
    ({"start": T0}, "missing parameter 'end'"),
    ({"start": "monday", "end": T0}, "'start' must be a number"),
    ({"start": T0 + 10, "end": T0}, "end time before start"),
    ({"start": T0, "end": T0 + 10, "interval": "hourly"}, "'interval' must be"),
    ({"start": T0, "end": T0 + 10, "interval": "-5"}, "'interval' must be"),
    ({"start": T0, "end": T0 + 10, "interval": "2.5"}, "'interval' must be"),
    ({"start": T0, "end": T0 + 10, "average": "yes"}, "'average' must be"),
    ({"start": T0, "end": T0 + 10, "skipmissing": "2"}, "'skipmissing' must be 0 or 1"),
    ({"start": T0, "end": T0 + 10, "timeformat": "rfc"}, "'timeformat' must be one of"),
    ({"start": T0, "end": T0 + 10, "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"start": T0, "end": T0 + 10, "dp": 20}, "'dp' must be at most 15"),
    ({"start": T0, "end": T0 + 10_000_000, "interval": 10}, "datapoint limit"),
])
def test_data_validates(admin, client, feed, params, fragment):
    res = get(client, "/feed/data.json", admin.apikey_read, id=feed, **params)
    assert res.status == 400, res.text
    assert res.json()["success"] is False and fragment in res.json()["message"]


def test_average_alias(admin, client, feed):
    res = get(client, "/feed/average.json", admin.apikey_read, id=feed, start=T0,
              end=T0 + 20, interval=20, timeformat="unix")
    assert res.json() == [[T0, 1.5], [T0 + 20, 3.0]]


def test_csv_single_and_csvexport(admin, client, feed):
    res = get(client, "/feed/data.json", admin.apikey_read, id=feed, start=T0, end=T0 + 30,
              interval=10, csv=1)
    assert res.status == 200 and res.headers["content-type"].startswith("text/csv")
    assert res.headers["content-disposition"] == f"attachment; filename={feed}.csv"
    # emoncms: unixms is not applied in the single-feed CSV; missing values are `null`
    assert res.text == f"{T0},1.00\n{T0 + 10},2.00\n{T0 + 20},3.00\n{T0 + 30},null\n"
    alias = get(client, "/feed/csvexport.json", admin.apikey_read, id=feed, start=T0,
                end=T0 + 30, interval=10)
    assert alias.text == res.text
    bad = get(client, "/feed/csvexport.json", admin.apikey_read, id=feed, start=T0,
              end=T0 + 30, interval=10, timezone="Nowhere/Land")
    assert bad.status == 400 and bad.headers["content-type"] == "application/json"


def test_csv_multi(admin, client, feed):
    other = get(client, "/feed/create.json", admin.apikey_write, name="b").json()["feedid"]
    get(client, "/feed/post.json", admin.apikey_write, id=other, time=T0, value=0.5)
    res = get(client, "/feed/data.json", admin.apikey_read, ids=f"{feed},{other}", start=T0,
              end=T0 + 10, interval=10, csv=1)
    assert res.text == (f"time,house:use,b\n{T0 * 1000},1.00,0.50\n"
                        f"{(T0 + 10) * 1000},2.00,null\n")


def test_export_raw_dat_from_byte_offset(admin, client, feed, ctx):
    empty = get(client, "/feed/export.json", admin.apikey_read, id=feed)
    assert empty.status == 200 and empty.body == b""  # nothing flushed yet
    ctx.feeds.flush()
    res = get(client, "/feed/export.json", admin.apikey_read, id=feed)
    assert res.headers["content-type"] == "application/octet-stream"
    assert res.body == struct.pack("<3f", 1, 2, 3)
    part = get(client, "/feed/export.json", admin.apikey_read, id=feed, start=8)
    assert part.body == struct.pack("<2f", 2, 3)  # re-sends the point before the offset
    assert get(client, "/feed/export.json", admin.apikey_read, id=feed,
               start=-1).status == 400


# -- access --------------------------------------------------------------------------------

def test_public_feed_is_readable_without_key_and_read_only_for_others(admin, client, feed,
                                                                       new_client):
    anon = new_client()
    assert get(anon, "/feed/value.json", None, id=feed).status == 401
    get(client, "/feed/set.json", admin.apikey_write, id=feed, fields='{"public": true}')
    assert get(anon, "/feed/value.json", None, id=feed).json() == 3.0
    rows = get(anon, "/feed/data.json", None, id=feed, start=T0, end=T0 + 10, interval=10,
               timeformat="unix").json()
    assert rows == [[T0, 1.0], [T0 + 10, 2.0]]
    listed = get(anon, "/feed/list.json", None, userid=admin.userid).json()
    assert [row["id"] for row in listed] == [feed]
    bob = make_account(new_client, "bob", by=admin.client)
    assert get(client, "/feed/value.json", bob.apikey_read, id=feed).json() == 3.0
    res = get(client, "/feed/post.json", bob.apikey_write, id=feed, time=T0, value=0)
    assert res.status == 403 and "read-only" in res.json()["message"]


def test_other_users_private_feed_looks_missing(admin, client, feed, new_client):
    bob = make_account(new_client, "bob", by=admin.client)
    res = get(client, "/feed/get.json", bob.apikey_read, id=feed)
    assert res.status == 404 and res.json()["message"] == f"feed {feed} does not exist"
    assert get(client, "/feed/list.json", bob.apikey_read).json() == []
    assert get(client, "/feed/list.json", bob.apikey_read,
               userid=admin.userid).json() == []  # only public feeds of others


def test_list_needs_key_or_userid(client, admin):
    res = client.get("/feed/list.json")
    assert res.status == 401 and "userid" in res.json()["message"]


def test_damaged_feed_file_is_a_500_without_paths(admin, client, feed, hub_config):
    (hub_config.feed_dir / f"{feed}.meta").write_bytes(b"\x00\x01\x02")
    res = get(client, "/feed/getmeta.json", admin.apikey_read, id=feed)
    assert res.status == 500 and "damaged" in res.json()["message"]
    assert str(hub_config.feed_dir) not in res.text
    listed = get(client, "/feed/list.json", admin.apikey_read)  # the list still answers
    assert listed.json()[0]["id"] == feed and listed.json()[0]["size"] is None
    assert "meta is 3 bytes" in listed.json()[0]["error"]
    assert str(hub_config.feed_dir) not in listed.text
