"""Property tests (Hypothesis) of the hostile-input parsers of the hub: whatever arrives, they
answer with their documented error family and nothing else (issue 11). Example counts are
bounded and the runs derandomized, so `./build.sh test` stays fast and repeatable."""

from __future__ import annotations

import contextlib
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.input.process import ProcessError, parse_processlist
from hub.input.readings import (
    IngestError,
    parse_bulk,
    parse_mqtt,
    parse_post,
    parse_profile,
)
from hub.names import PROFILE_KINDS, PROFILE_TOPIC_ROOT

NOW = time.time()
BOUNDED = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

# JSON documents, including the awkward numbers (huge, tiny, negative zero) and deep nesting.
numbers = st.one_of(st.integers(min_value=-10**400, max_value=10**400),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([1e39, -1e39, 3.4028235e38, 1e-320, -0.0]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)
nasty_text = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.integers(min_value=1, max_value=6000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=6000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "1e39", "10" * 400,
                     '{"time": 1e999, "p": 1}', "[1, 2, NaN]", "\ufeff1", "0x10"]),
)
topic_levels = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@BOUNDED
@given(levels=st.lists(topic_levels, min_size=0, max_size=5),
       payload=st.one_of(nasty_text.map(str.encode), st.binary(max_size=200)))
def test_mqtt_readings_parser_raises_only_ingest_errors(levels, payload):
    topic = "/".join(["emon", *levels])
    try:
        posts = parse_mqtt(topic, payload, "emon", now=NOW)
    except IngestError:
        return
    for post in posts:
        assert post.values and all(abs(v) <= 3.5e38 for v in post.values.values())


@BOUNDED
@given(kind=st.one_of(st.sampled_from(PROFILE_KINDS), st.text(max_size=10)),
       doc=st.one_of(nasty_text, st.fixed_dictionaries({
           "start": numbers, "interval": numbers,
           "values": st.lists(st.one_of(st.none(), numbers), max_size=30)}).map(json.dumps)))
def test_profile_parser_raises_only_ingest_errors(kind, doc):
    with contextlib.suppress(IngestError):
        parse_profile(f"{PROFILE_TOPIC_ROOT}/{kind}", doc.encode(), now=NOW)


@BOUNDED
@given(params=st.dictionaries(
    st.sampled_from(["node", "fulljson", "json", "csv", "data", "time"]), nasty_text,
    max_size=4), node=st.one_of(st.none(), st.text(max_size=70)))
def test_http_post_parser_raises_only_ingest_errors(params, node):
    with contextlib.suppress(IngestError):
        parse_post(params, node, now=NOW)


@BOUNDED
@given(data=st.one_of(nasty_text, st.lists(st.lists(json_values, max_size=6), max_size=6)
                      .map(json.dumps)),
       params=st.dictionaries(st.sampled_from(["sentat", "offset", "time"]),
                              st.one_of(st.text(max_size=12), numbers.map(str)), max_size=2))
def test_bulk_parser_raises_only_ingest_errors(data, params):
    with contextlib.suppress(IngestError):
        parse_bulk(data, params, now=NOW)


FEEDS = {1: 7, 2: 8}  # feed id → owner


@BOUNDED
@given(raw=st.one_of(nasty_text, json_values, st.lists(st.fixed_dictionaries(
    {"fn": st.one_of(st.sampled_from(["log_to_feed", "scale", "process__offset", "2", 1,
                                      "abs_value", "²", "9" * 5000]), json_values),
     "args": st.one_of(json_values, st.lists(json_values, max_size=2))}), max_size=5)))
def test_processlist_parser_raises_only_process_errors(raw):
    try:
        stored = parse_processlist(raw, FEEDS.get, 7)
    except ProcessError:
        return
    json.dumps(stored, allow_nan=False)  # what is stored is plain, finite JSON
