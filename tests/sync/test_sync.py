"""Sync against a real second hub: byte-for-byte mirrors, tail-only increments, full
re-download when the server's history changed, and the status the Settings page shows."""

from __future__ import annotations

import stat
import struct
from pathlib import Path

from hub.feed import summary
from hub.sync.run import sync_once
from tests.sync.conftest import local_files, mapped

YEAR_10S_BYTES = 365 * 8640 * 4


def assert_mirrors(ctx, remote) -> None:
    for name in mapped(ctx, remote):
        assert local_files(ctx, remote, name) == remote.files(name), name
        local_id = ctx.sync.mirrors()[remote.feeds[name]]
        assert summary.verify(ctx.feeds.engine, local_id) == []  # the sidecar is in step


def test_first_sync_mirrors_the_server_byte_for_byte(linked, remote, proxy):
    status = sync_once(linked)
    assert status["last_run"]["ok"], status
    assert status["state"] == "idle" and status["failures"] == 0
    assert_mirrors(linked, remote)
    feeds = {f["name"]: f for f in status["feeds"]}
    assert set(feeds) == {"hydro", "community", "use_hh"}
    assert feeds["hydro"]["mode"] == "full" and feeds["hydro"]["progress"] == 1.0
    assert feeds["hydro"]["bytes"] == len(remote.files("hydro")[0]) >= YEAR_10S_BYTES - 8640 * 4
    assert proxy.export_bytes == sum(len(remote.files(n)[0]) for n in mapped(linked, remote))
    local = linked.feeds.get(feeds["hydro"]["local_id"])
    assert (local.tag, local.interval, local.user_id) == ("server", 10, linked.users.by_username(
        "home").id)
    assert stat.S_IMODE((linked.sync.dir / "link.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(linked.sync.dir.stat().st_mode) == 0o700
    assert not list(linked.config.feed_dir.glob("*.sync*"))  # no leftovers


def test_incremental_run_moves_only_the_tail(linked, remote, proxy):
    sync_once(linked)
    remote.append("hydro", 8640)  # a day of 10 s points
    remote.append("use_hh", 48)
    proxy.export_bytes = 0
    status = sync_once(linked)
    assert status["last_run"]["ok"], status
    assert_mirrors(linked, remote)
    feeds = {f["name"]: f for f in status["feeds"]}
    assert (feeds["hydro"]["mode"], feeds["hydro"]["bytes"]) == ("tail", 8640 * 4)
    assert (feeds["use_hh"]["mode"], feeds["use_hh"]["bytes"]) == ("tail", 48 * 4)
    assert feeds["community"]["mode"] == "up to date"
    # each export re-sends one overlap point and nothing else
    assert proxy.export_bytes == (8640 + 48) * 4 + 3 * 4
    assert status["last_run"]["bytes"] == (8640 + 48) * 4


def test_changed_history_on_the_server_means_a_full_download(linked, remote, proxy):
    sync_once(linked)
    remote.overwrite_last("community", 123.25)  # the overlap point no longer matches
    remote.append("community", 2)
    status = sync_once(linked)
    feeds = {f["name"]: f for f in status["feeds"]}
    assert feeds["community"]["mode"] == "full", feeds["community"]
    assert_mirrors(linked, remote)


def test_mirrored_feeds_are_read_only_through_the_api(linked, remote, client, new_client):
    from tests.conftest import Account  # noqa: F401 - the fixture's type

    sync_once(linked)
    login = new_client()
    assert login.post("/user/login.json", {"username": "home",
                                           "password": "correct horse battery"}).status == 200
    user = linked.users.by_username("home")
    local_id = linked.sync.mirrors()[remote.feeds["hydro"]]
    answer = client.post("/feed/post.json", {"apikey": user.apikey_write, "id": local_id,
                                             "time": 1_700_000_000, "value": 1})
    assert answer.status == 403 and "read-only" in answer.json()["message"]
    assert client.get("/feed/getmeta.json", {"apikey": user.apikey_read,
                                             "id": local_id}).status == 200
    status = login.get("/sync/status.json").json()
    assert status["provisioned"] and status["link"]["url"] == linked.sync.link().url
    assert remote.apikey not in login.get("/sync/status.json").text


def test_the_byte_cap_splits_a_download_over_runs(linked, remote, proxy):
    from hub.config import Config

    linked.config = Config({**linked.config, "sync_max_bytes": 5_000_000})
    first = sync_once(linked)
    hydro = next(f for f in first["feeds"] if f["name"] == "hydro")
    assert first["last_run"]["ok"] and first["more"]
    assert hydro["result"] == "partial" and 0 < hydro["progress"] < 1
    assert first["next_run"] - first["last_run"]["finished"] <= linked.config.sync_retry_min
    local_id = hydro["local_id"]
    assert linked.feeds.engine.get_meta(local_id).npoints == 0  # not swapped in until whole
    for _ in range(3):
        status = sync_once(linked)
    assert status["last_run"]["ok"] and not status["more"]
    assert_mirrors(linked, remote)


def test_a_partial_download_that_no_longer_matches_starts_again(linked, remote, proxy):
    from hub.config import Config

    linked.config = Config({**linked.config, "sync_max_bytes": 4_000_000})
    first = sync_once(linked)
    hydro = next(f for f in first["feeds"] if f["name"] == "hydro")
    meta = remote.ctx.feeds.engine.get_meta(remote.feeds["hydro"])
    slot_time = meta.start_time + meta.interval * (hydro["local_bytes"] // 4 - 1)
    remote.ctx.feeds.engine.write_points(remote.feeds["hydro"], [(slot_time, -42.0)],
                                         now=slot_time)
    second = sync_once(linked)
    assert second["last_run"]["error_code"] == "changed", second
    linked.config = Config({**linked.config, "sync_max_bytes": 64_000_000})
    assert sync_once(linked)["last_run"]["ok"]
    assert_mirrors(linked, remote)


def test_a_changed_interval_on_the_server_is_mirrored(linked, remote, proxy, tmp_path):
    sync_once(linked)
    engine = remote.ctx.feeds.engine
    feed_id = remote.feeds["use_hh"]
    saved_dat, saved_meta = remote.files("use_hh")
    hourly = saved_dat[: len(saved_dat) // 8 * 4]  # half as many points, hourly
    new = Path(engine.datadir) / f"{feed_id}.dat.new"
    new.write_bytes(hourly)
    start = engine.get_meta(feed_id).start_time
    engine.replace_feed(feed_id, 3600, start, str(new))
    try:
        status = sync_once(linked)
        feed = next(f for f in status["feeds"] if f["name"] == "use_hh")
        assert feed["mode"] == "full", feed
        assert local_files(linked, remote, "use_hh") == remote.files("use_hh")
        assert linked.feeds.get(feed["local_id"]).interval == 3600
    finally:
        new.write_bytes(saved_dat)
        interval, start = struct.unpack("<II", saved_meta[8:])
        engine.replace_feed(feed_id, interval, start, str(new))
