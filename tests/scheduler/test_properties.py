"""Property test (Hypothesis) of `python3 -m hub.scheduler`'s input: whatever JSON (or not)
arrives on stdin, it prints a plan and exits 0, or prints "error: …" and exits 2 — never a
traceback (issue 11 #8). Bounded and derandomized so CI stays fast and repeatable."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.scheduler.cli import main

T0 = 1_711_843_200
BOUNDED = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(min_value=-10**20, max_value=10**20),
                    st.floats(allow_nan=False), st.integers(T0 - 86_400, T0 + 86_400),
                    st.sampled_from([1800, 3600, 0, -1, 10**400, 1e308]))
scalars = st.one_of(st.none(), st.booleans(), numbers,
                    st.sampled_from(["07:00", "25:00", "Europe/London", "Mars/Olympus", ""]),
                    st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=25)
profiles = st.fixed_dictionaries(
    {"start": st.one_of(st.integers(T0 - 86_400, T0 + 86_400), json_values),
     "interval": st.one_of(st.sampled_from([60, 1800, 3600]), json_values),
     "values": st.one_of(st.lists(st.one_of(numbers, st.none()), max_size=60), json_values)},
    optional={"higher_is_better": json_values, "end": json_values})
requests = st.fixed_dictionaries(
    {"profile": st.one_of(profiles, json_values),
     "period": st.one_of(st.integers(-100, 200_000), json_values),
     "ready_by": st.one_of(st.integers(T0 - 3600, T0 + 172_800), scalars)},
    optional={"now": st.one_of(st.just(T0), numbers, json_values),
              "interruptible": json_values, "timezone": scalars, "compare_ds": json_values,
              "extra": json_values})
inputs = st.one_of(
    requests.map(lambda r: json.dumps(r, allow_nan=True)),
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.integers(1, 6000).map(lambda n: '{"profile":' + "[" * n + "]" * n + "}"),
)


@BOUNDED
@given(text=inputs)
def test_scheduler_command_answers_a_plan_or_exit_2(text):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([], io.StringIO(text), stdout, stderr)
    if code == 0:
        out = json.loads(stdout.getvalue())
        assert out["status"] and isinstance(out["periods"], list)
    else:
        assert code == 2 and stderr.getvalue().startswith("error: "), stderr.getvalue()
