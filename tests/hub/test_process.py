"""Every process, run through InputStore.ingest against real MariaDB, Redis and feed files,
and process list validation."""

from __future__ import annotations

import pytest

from hub.context import HubContext
from hub.input import process as proc
from hub.input.process import (
    BadArgument,
    BadProcessList,
    ForeignFeed,
    MissingFeed,
    UnknownProcess,
)
from hub.input.readings import NodePost

T0 = 1_700_000_000  # slot-aligned for 10 s feeds


@pytest.fixture
def user_id(ctx) -> int:
    return ctx.users.register("owner", "correct horse").id


def make_feed(ctx, user_id: int, name: str) -> int:
    return ctx.feeds.create(user_id, name, interval=10).id


def make_input(ctx, user_id: int, steps: list, node: str = "n", name: str = "x") -> int:
    ctx.inputs.ingest(user_id, [NodePost(node, T0 - 1000, {name: 0.0})])  # created on sight
    input_id = ctx.inputs.tree(user_id)[node][name]
    found = next(i for i in ctx.inputs.list(user_id) if (i["nodeid"], i["name"]) == (node, name))
    assert input_id["processList"] == []
    ctx.inputs.set_processlist(user_id, found["id"], steps)
    return found["id"]


def post(ctx, user_id: int, *readings: tuple[int, float], node: str = "n", name: str = "x"):
    return ctx.inputs.ingest(user_id, [NodePost(node, t, {name: v}) for t, v in readings])


def series(ctx, feed_id: int, start: int, end: int) -> list:
    return [v for _, v in ctx.feeds.data(feed_id, start, end - 10, 10)]  # end exclusive


def step(fn: str, arg=None) -> dict:
    return {"fn": fn, "args": [] if arg is None else [arg]}


# --- logging --------------------------------------------------------------------------------

def test_log_to_feed_writes_each_reading_and_passes_the_value_on(ctx, user_id):
    raw, scaled = make_feed(ctx, user_id, "raw"), make_feed(ctx, user_id, "scaled")
    make_input(ctx, user_id, [step("log_to_feed", raw), step("scale", 2),
                              step("log_to_feed", scaled)])
    report = post(ctx, user_id, (T0, 10.0), (T0 + 10, 11.0), (T0 + 30, 13.0))
    assert (report.readings, report.points, report.errors) == (3, 6, [])
    assert series(ctx, raw, T0, T0 + 40) == [10.0, 11.0, None, 13.0]
    assert series(ctx, scaled, T0, T0 + 40) == [20.0, 22.0, None, 26.0]
    # and on disk after the worker's flush
    ctx.feeds.flush()
    assert series(ctx, raw, T0, T0 + 40) == [10.0, 11.0, None, 13.0]


def test_log_to_feed_join_interpolates_gaps(ctx, user_id):
    feed = make_feed(ctx, user_id, "kwh")
    make_input(ctx, user_id, [step("log_to_feed_join", feed)])
    post(ctx, user_id, (T0, 1.0))
    ctx.feeds.flush()
    post(ctx, user_id, (T0 + 40, 5.0))
    ctx.feeds.flush()
    assert series(ctx, feed, T0, T0 + 50) == [1.0, 2.0, 3.0, 4.0, 5.0]


# --- arithmetic -----------------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "value", "expected"), [
    ([step("scale", 0.001)], 1500.0, 1.5),
    ([step("offset", -2.5)], 10.0, 7.5),
    ([step("allowpositive")], -30.0, 0.0),
    ([step("allowpositive")], 30.0, 30.0),
    ([step("allownegative")], 30.0, 0.0),
    ([step("allownegative")], -30.0, -30.0),
    ([step("max_value_allowed", 100)], 150.0, 100.0),
    ([step("min_value_allowed", 5)], 1.0, 5.0),
    ([step("abs_value")], -4.0, 4.0),
    ([step("reset2zero")], 4.0, 0.0),
    ([step("scale", 2), step("offset", 1), step("allownegative")], 3.0, 0.0),
])
def test_value_processes(ctx, user_id, steps, value, expected):
    feed = make_feed(ctx, user_id, "out")
    make_input(ctx, user_id, [*steps, step("log_to_feed", feed)])
    post(ctx, user_id, (T0, value))
    assert ctx.feeds.last(feed) == (T0, expected)


# --- energy ---------------------------------------------------------------------------------

def test_power_to_kwh_integrates_and_skips_long_gaps_and_old_readings(ctx, user_id):
    kwh, watts = make_feed(ctx, user_id, "kwh"), make_feed(ctx, user_id, "w")
    make_input(ctx, user_id, [step("power_to_kwh", kwh), step("log_to_feed", watts)])
    post(ctx, user_id, (T0, 1000.0))  # first reading: total starts at 0
    assert ctx.feeds.last(kwh) == (T0, 0.0)
    post(ctx, user_id, (T0 + 1800, 2000.0))  # 2000 W for 1800 s = 1 kWh
    assert ctx.feeds.last(kwh) == (T0 + 1800, pytest.approx(1.0))
    post(ctx, user_id, (T0 + 1800 + 7200, 500.0))  # monitor was down 2 h: no jump
    assert ctx.feeds.last(kwh) == (T0 + 9000, pytest.approx(1.0))
    post(ctx, user_id, (T0 + 100, 9999.0))  # an old reading re-delivered: ignored
    assert ctx.feeds.last(kwh) == (T0 + 9000, pytest.approx(1.0))
    assert ctx.feeds.last(watts) == (T0 + 9000, 500.0)  # returns the input watts


def test_power_to_kwh_chains_within_one_batch(ctx, user_id):
    kwh = make_feed(ctx, user_id, "kwh")
    make_input(ctx, user_id, [step("power_to_kwh", kwh)])
    post(ctx, user_id, (T0, 3600.0), (T0 + 10, 3600.0), (T0 + 20, 3600.0))
    assert ctx.feeds.last(kwh) == (T0 + 20, pytest.approx(0.02))
    ctx.feeds.flush()
    assert series(ctx, kwh, T0, T0 + 30) == pytest.approx([0.0, 0.01, 0.02])


def test_wh_accumulator_counts_increases_only(ctx, user_id):
    total, out = make_feed(ctx, user_id, "total"), make_feed(ctx, user_id, "out")
    make_input(ctx, user_id, [step("wh_accumulator", total), step("log_to_feed", out)])
    post(ctx, user_id, (T0, 1000.0))  # primes the counter, writes nothing
    assert ctx.feeds.last(total) is None
    post(ctx, user_id, (T0 + 10, 1010.0))  # +10 Wh in 10 s = 3.6 kW
    assert ctx.feeds.last(total) == (T0 + 10, 10.0)
    assert ctx.feeds.last(out) == (T0 + 10, 10.0)  # returns the total, as emoncms
    post(ctx, user_id, (T0 + 20, 5.0))  # the device counter reset: negative jump ignored
    assert ctx.feeds.last(total) == (T0 + 20, 10.0)
    post(ctx, user_id, (T0 + 30, 15.0))  # counting again from the new base
    assert ctx.feeds.last(total) == (T0 + 30, 20.0)
    post(ctx, user_id, (T0 + 40, 1015.0))  # +1000 Wh in 10 s = 360 kW: implausible
    assert ctx.feeds.last(total) == (T0 + 40, 20.0)
    post(ctx, user_id, (T0 + 50, 1016.0))  # the new base after the glitch counts on
    assert ctx.feeds.last(total) == (T0 + 50, 21.0)
    post(ctx, user_id, (T0 + 5, 0.0))  # old reading re-delivered: state not moved back
    post(ctx, user_id, (T0 + 60, 1017.0))
    assert ctx.feeds.last(total) == (T0 + 60, 22.0)


def test_kwh_accumulator_limits_rate_in_kwh(ctx, user_id):
    total = make_feed(ctx, user_id, "total")
    make_input(ctx, user_id, [step("kwh_accumulator", total)])
    post(ctx, user_id, (T0, 100.0), (T0 + 10, 100.01))  # 0.01 kWh in 10 s = 3.6 kW
    assert ctx.feeds.last(total) == (T0 + 10, pytest.approx(0.01))
    post(ctx, user_id, (T0 + 20, 100.21))  # 0.2 kWh in 10 s = 72 kW: ignored
    assert ctx.feeds.last(total) == (T0 + 20, pytest.approx(0.01))
    post(ctx, user_id, (T0 + 30, 100.22), (T0 + 40, 99.0))  # then a counter reset
    assert ctx.feeds.last(total) == (T0 + 40, pytest.approx(0.02))


def test_state_survives_a_new_process(ctx, user_id):
    """Accumulator state is in Redis: a restarted worker (new context) continues."""
    total = make_feed(ctx, user_id, "total")
    make_input(ctx, user_id, [step("wh_accumulator", total)])
    post(ctx, user_id, (T0, 50.0))
    other = HubContext(ctx.config)
    try:
        other.inputs.ingest(user_id, [NodePost("n", T0 + 10, {"x": 60.0})])
    finally:
        other.close()
    assert ctx.feeds.last(total) == (T0 + 10, 10.0)


# --- validation and storage -----------------------------------------------------------------

def test_process_list_forms_are_normalised(ctx, user_id):
    feed = make_feed(ctx, user_id, "f")
    input_id = make_input(ctx, user_id, [])
    stored = ctx.inputs.set_processlist(user_id, input_id, [
        {"fn": "process__scale", "args": ["0.5"]}, {"fn": 3, "args": [1]},
        {"fn": "log_to_feed", "args": [str(feed)]}, {"fn": "24"}])
    assert stored == [{"fn": "process__scale", "args": [0.5]},
                      {"fn": "process__offset", "args": [1.0]},
                      {"fn": "process__log_to_feed", "args": [feed]},
                      {"fn": "process__allowpositive", "args": []}]
    # emoncms' stored string form
    assert ctx.inputs.set_processlist(user_id, input_id, f"2:0.1,1:{feed}") == [
        {"fn": "process__scale", "args": [0.1]}, {"fn": "process__log_to_feed", "args": [feed]}]
    assert ctx.inputs.get_processlist(user_id, input_id)[1]["args"] == [feed]


def test_validation_errors_are_specific(ctx, user_id):
    other = ctx.users.register("other", "correct horse").id
    foreign = make_feed(ctx, other, "theirs")
    input_id = make_input(ctx, user_id, [])
    cases = [
        ([{"fn": "process__frobnicate", "args": []}], UnknownProcess, "unknown process"),
        ([{"fn": 999}], UnknownProcess, "unknown process"),
        ([{"fn": "log_to_feed", "args": [12345]}], MissingFeed, "feed 12345 does not exist"),
        ([{"fn": "log_to_feed", "args": [foreign]}], ForeignFeed, "another user"),
        ([{"fn": "log_to_feed", "args": ["x"]}], BadArgument, "needs a feed id"),
        ([{"fn": "log_to_feed", "args": []}], BadArgument, "one argument"),
        ([{"fn": "scale", "args": ["NaN"]}], BadArgument, "finite number"),
        ([{"fn": "scale", "args": [float("inf")]}], BadArgument, "finite number"),
        ([{"args": [1]}], BadProcessList, "step 1"),
        ({"fn": "scale"}, BadProcessList, "must be a list"),
        ("[not json", BadProcessList, "not valid JSON"),
        ([{"fn": "abs_value"}] * (proc.MAX_STEPS + 1), BadProcessList, "at most"),
    ]
    for raw, error, words in cases:
        with pytest.raises(error, match=words):
            ctx.inputs.set_processlist(user_id, input_id, raw)
    assert ctx.inputs.get_processlist(user_id, input_id) == []  # nothing stored


def test_a_deleted_feed_does_not_stop_the_rest_of_the_list(ctx, user_id):
    gone, kept = make_feed(ctx, user_id, "gone"), make_feed(ctx, user_id, "kept")
    make_input(ctx, user_id, [step("log_to_feed", gone), step("log_to_feed", kept)])
    ctx.feeds.delete(gone)
    report = post(ctx, user_id, (T0, 7.0))
    assert ctx.feeds.last(kept) == (T0, 7.0)
    assert report.errors and f"feed {gone}" in report.errors[0]


def test_another_process_sees_process_list_changes(ctx, user_id):
    """The worker caches inputs; a change made by the web process reaches it."""
    feed = make_feed(ctx, user_id, "f")
    input_id = make_input(ctx, user_id, [])
    worker = HubContext(ctx.config)
    try:
        worker.inputs.ingest(user_id, [NodePost("n", T0, {"x": 1.0})])  # cached, no list
        ctx.inputs.set_processlist(user_id, input_id, [step("log_to_feed", feed)])
        worker.inputs.ingest(user_id, [NodePost("n", T0 + 10, {"x": 2.0})])
    finally:
        worker.close()
    assert ctx.feeds.last(feed) == (T0 + 10, 2.0)


def test_registry_ids_match_emoncms():
    ids = {p.name: p.id for p in proc.PROCESSES}
    assert ids == {"log_to_feed": 1, "scale": 2, "offset": 3, "power_to_kwh": 4,
                   "allowpositive": 24, "allownegative": 25, "reset2zero": 33,
                   "wh_accumulator": 34, "max_value_allowed": 61, "min_value_allowed": 62,
                   "abs_value": 63, "kwh_accumulator": 64, "log_to_feed_join": 65}
