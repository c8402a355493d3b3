"""`python3 -m hub.scheduler`: JSON in, plan out; bad input exits 2 with a message."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.scheduler.cli import main

T0 = 1_711_843_200  # 2024-03-31T00:00Z (spring forward in London)
PROFILE = {"start": T0, "interval": 1800, "values": [5, 3, 3, 4, 3, 3, 9, 1]}
REQUEST = {"profile": PROFILE, "period": 4200, "ready_by": T0 + 14400, "interruptible": True,
           "now": T0, "timezone": "Europe/London", "compare_ds": True}


def run(request) -> tuple[int, dict | None, str]:
    stdin = io.StringIO(request if isinstance(request, str) else json.dumps(request))
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([], stdin, stdout, stderr)
    return code, json.loads(stdout.getvalue()) if code == 0 else None, stderr.getvalue()


def test_main_prints_periods_and_explanation():
    code, out, _ = run(REQUEST)
    assert code == 0
    assert [(p["start"] - T0, p["end"] - T0) for p in out["periods"]] == [
        (1800, 4200), (12600, 14400)]
    assert out["scheduled_s"] == 4200 and out["shortfall_s"] == 0
    assert out["explanation"]["total_signal"] == pytest.approx(5.0)
    assert out["explanation"]["run_now"]["total_signal"] == pytest.approx(9.0)
    assert out["demand_shaper"]["total_signal"] == pytest.approx(5.0)
    assert out["periods"][0]["end_local"] == "2024-03-31T02:10:00+01:00"


def test_main_ready_by_as_local_time():
    request = {**REQUEST, "ready_by": "05:00", "interruptible": False, "compare_ds": False}
    code, out, _ = run(request)
    assert code == 0
    assert out["ready_by_local"] == "2024-03-31T05:00:00+01:00"
    assert out["ready_by"] == T0 + 4 * 3600
    assert len(out["periods"]) == 1 and "demand_shaper" not in out


def test_main_stale_profile_runs_now_and_reports_unknown_signal():
    code, out, _ = run({**REQUEST, "now": T0 + 86_400, "ready_by": T0 + 90_000})
    assert code == 0
    assert out["periods"][0]["start"] == T0 + 86_400
    assert out["scheduled_s"] == 3600 and out["shortfall_s"] == 600
    assert out["explanation"]["unknown_seconds"] == 3600


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({**REQUEST, "colour": "red"}, "unknown keys: colour"),
        ({k: v for k, v in REQUEST.items() if k != "period"}, "missing key: period"),
        ({**REQUEST, "period": -60}, "period"),
        ({**REQUEST, "period": "1h"}, "period"),
        ({**REQUEST, "ready_by": T0 - 60}, "not after now"),
        ({**REQUEST, "ready_by": "25:00"}, "HH:MM"),
        ({**REQUEST, "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({**REQUEST, "interruptible": "no"}, "interruptible"),
        ({**REQUEST, "now": 10**30, "ready_by": 10**31}, "now must be a unix time"),
        ({**REQUEST, "ready_by": 10**30}, "ready_by must be a unix time"),
        ({**REQUEST, "now": T0 - 30 * 86_400}, "at most 14 days"),
        ({**REQUEST, "period": 10**12}, "period must be"),
        ({**REQUEST, "profile": {**PROFILE, "values": [1, "x"]}}, "value #1"),
        ({**REQUEST, "profile": {**PROFILE, "end": T0}}, "does not match"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"profile": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
)
def test_main_bad_input_exits_2(request_, message):
    code, _, err = run(request_)
    assert code == 2
    assert err.startswith("error: ") and message in err


def test_module_runs_as_command():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "hub.scheduler"], input=json.dumps(REQUEST),
                          capture_output=True, text=True, cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "scheduled"
    bad = subprocess.run([sys.executable, "-m", "hub.scheduler"], input="{}",
                         capture_output=True, text=True, cwd=root, check=False)
    assert bad.returncode == 2 and "missing key" in bad.stderr


def test_deep_json_from_the_command_exits_2_with_a_message():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "hub.scheduler"],
                          input='{"profile": ' + "[" * 5000 + "]" * 5000 + "}",
                          capture_output=True, text=True, cwd=root, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_command_and_hub_start_a_run_due_now_on_the_same_minute():
    """The schedule editor shows the hub's plan; the command must give the same windows, also
    when the best window is "now" and now is mid-minute (both round up to the minute)."""
    from hub.scheduler.plan import ScheduleDefinition, new_occurrence, plan
    from hub.scheduler.signal import Signal

    now = T0 + 11  # mid-minute, in the cheapest half-hour
    profile = {"start": T0, "interval": 1800, "values": [1, 9, 9, 9, 9, 9, 9, 9]}
    code, out, _ = run({"profile": profile, "period": 600, "ready_by": T0 + 14400, "now": now})
    assert code == 0
    defn = ScheduleDefinition.from_json({"ready_by": "04:00", "period": 600, "mode": "smart",
                                         "interruptible": False, "days": [True] * 7})
    hub_plan = plan(defn, new_occurrence(defn, now, "UTC"), Signal.from_json(profile), now)
    assert [(p["start"], p["end"]) for p in out["periods"]] == [
        (w.start, w.end) for w in hub_plan.windows] == [(T0 + 60, T0 + 660)]
