"""Property-based API fuzzing: schemathesis, driven by the hub's own /openapi.json, against a
real `hub web` process (MariaDB, Redis and Mosquitto real, as in every test).

Every operation is called as every documented kind of caller — anonymous, bob's read key,
bob's write key (query or Bearer), bob's session, the admin's session — with requests that
schemathesis generates from the schema, valid ones and invalid ones. Half the generated ids are
swapped for ids that exist (bob's feeds, input, device, the admin's), which is what stateful
links would do, so the fuzzer gets past the 404s. The run's rule:

- no 5xx, except an answer the operation documents (health.json's 503 without a worker);
- no answer that breaks its own schema (status, content type, body: `response_schema_
  conformance` and `content_type_conformance`, against the tightened /openapi.json);
- no request stuck (over STUCK_S); requests slower than 2 s are counted and listed in the
  figures but do not fail the run: this machine's load moves timings by seconds, and tests
  here assert no timings (the benches measure speed);
- the web process' RSS grows by at most 50 MB.

Bounded by time: a first round of 2 requests per operation and caller always runs in full
(about 1,000 requests, ~40 s), then rounds of 8 until HUB_FUZZ_SECONDS have passed (default
90; say 1800 for a long local run; the seed is fixed unless HUB_FUZZ_SEED says otherwise,
0 = random). The figures
(requests, operations, callers, failures, RSS) are printed, with one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
)

from tests.conftest import SETUP_CODE  # noqa: E402

SECONDS = float(os.environ.get("HUB_FUZZ_SECONDS", "90"))
SLOW_S = 2.0  # reported
STUCK_S = 15.0  # fails: a request this slow is hung, not slow
RSS_LIMIT_MB = 50
FIRST_EXAMPLES = 2  # per operation and caller in the first round, which always runs in full
EXAMPLES = 8  # per operation and caller in each later round, until HUB_FUZZ_SECONDS
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
ID_PARAMS = ("id", "inputid", "device", "userid", "ids", "node", "name")


@dataclass
class Run:
    requests: int = 0
    operations: set = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)
    succeeded: set = field(default_factory=set)  # operations that answered 2xx at least once
    biggest_jump: tuple = (0.0, "")  # (MB, operation): the largest rise of the peak RSS
    failures: dict = field(default_factory=dict)  # (operation, kind) -> first example
    slowest: tuple = (0.0, "")
    slow: dict = field(default_factory=dict)  # operation → its slowest time over SLOW_S


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def hub_web(hub_web_process):
    """`python -m hub web` on a free port, as the device runs it (tests/conftest.py)."""
    proc, port, log = hub_web_process
    return proc, f"http://127.0.0.1:{port}", log


def _world(base: str, ctx) -> dict:
    """Accounts and data for the fuzzer to find: what the callers and the ids point at."""
    anon = requests.Session()
    reg = anon.post(f"{base}/user/register.json", data={
        "username": "admin", "password": "admin-long-pw", "setup_code": SETUP_CODE}).json()
    admin_id = reg["userid"]
    bob = ctx.users.register("bob", "bobs-long-password")
    feed = ctx.feeds.create(bob.id, "power", interval=10)
    public = ctx.feeds.create(bob.id, "solar", interval=60)
    ctx.feeds.update(public.id, public=True)
    admins = ctx.feeds.create(admin_id, "theirs", interval=10)
    now = int(time.time())
    for f in (feed, public, admins):
        ctx.feeds.insert_many(f.id, [now - 600 + 10 * i for i in range(60)],
                              [float(i) for i in range(60)])
    requests.post(f"{base}/input/post", data={"apikey": bob.apikey_write, "node": "n",
                                              "fulljson": '{"power": 5}'})
    inputs = [i["id"] for i in ctx.inputs.list(bob.id)]
    device = ctx.devices.create(bob.id, "plug", "emonesp", "emon/fuzzplug",
                                mqtt_username="fuzzplug")
    return {"admin": admin_id, "bob": bob.id, "ids": [feed.id, public.id, admins.id, *inputs,
                                                      device.id, admin_id, bob.id],
            "nodes": ["n"], "names": ["power", "solar"]}


def _callers(base: str, ctx, world: dict) -> dict[str, requests.Session]:
    """A fresh session per kind of caller, with credentials read from the stores (the fuzzer
    may have replaced keys, logged out or locked the login route; none of that matters)."""
    bob = ctx.users.get(world["bob"])
    callers = {name: requests.Session() for name in
               ("anonymous", "read", "write", "bearer", "session", "admin")}
    callers["read"].params = {"apikey": bob.apikey_read}
    callers["write"].params = {"apikey": bob.apikey_write}
    callers["bearer"].headers["Authorization"] = f"Bearer {bob.apikey_write}"
    callers["session"].cookies.set("hub_session", ctx.users.create_session(bob.id))
    callers["admin"].cookies.set("hub_session", ctx.users.create_session(world["admin"]))
    return callers


def _swap_ids(case, world: dict, rng: random.Random) -> None:
    """Point half of the cases at things that exist (the role of stateful links)."""
    if rng.random() < 0.5:
        return
    for container in (case.query, case.path_parameters):
        if not container:
            continue
        for name in list(container):
            if name in ("id", "inputid", "device", "userid"):
                container[name] = rng.choice(world["ids"])
            elif name == "ids":
                container[name] = ",".join(str(rng.choice(world["ids"])) for _ in range(2))
            elif name == "node":
                container[name] = rng.choice(world["nodes"])


def _strategy(operation):
    """Valid requests, invalid ones (negative mode), and the document's examples."""
    from schemathesis import GenerationMode

    options = [operation.as_strategy(GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # an operation without parameters has no negatives
        options.append(operation.as_strategy(GenerationMode.NEGATIVE))
    with contextlib.suppress(Exception):
        options.extend(operation.get_strategies_from_examples())
    return st.one_of(*options)


def _fuzz_operation(operation, caller: str, session, base: str, world: dict, run: Run,
                    rng: random.Random, deadline: float, examples: int) -> None:
    documented_5xx = {s for s in operation.definition.raw.get("responses", {})
                      if s.startswith("5")}
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(case=_strategy(operation))
    def one(case) -> None:
        if time.monotonic() > deadline:
            return
        _swap_ids(case, world, rng)
        if caller != "anonymous":  # the caller's own credentials, not generated ones
            for container, name in ((case.query, "apikey"), (case.headers, "Authorization"),
                                    (case.cookies, "hub_session")):
                if container:
                    container.pop(name, None)
        started = time.monotonic()
        try:
            response = case.call(base_url=base, session=session, timeout=30)
        except requests.RequestException as exc:
            run.failures.setdefault((label, "no answer"), f"{caller}: {exc!r}"[:300])
            return
        took = time.monotonic() - started
        run.requests += 1
        run.operations.add(label)
        run.statuses[response.status_code] += 1
        if response.status_code < 300:
            run.succeeded.add(label)
        if took > run.slowest[0]:
            run.slowest = (took, f"{caller} {label}")
        if took > SLOW_S:
            run.slow[label] = max(run.slow.get(label, 0.0), round(took, 2))
        if took > STUCK_S:
            run.failures.setdefault((label, "stuck"), f"{caller}: {took:.1f} s: "
                                                      f"{case.as_curl_command()}"[:500])
        checks = CHECKS
        if str(response.status_code) in documented_5xx:
            checks = [c for c in CHECKS if c is not not_a_server_error]
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # record every failure, go on
            kind = type(exc).__name__
            run.failures.setdefault((label, kind), (
                f"{caller}: {response.status_code} {response.text[:200]!r} {str(exc)[:300]} "
                f"{case.as_curl_command()[:400]}"))

    one()


def test_api_fuzz(hub_web, ctx, capsys):
    proc, base, log = hub_web
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    world = _world(base, ctx)
    # Derandomized like the Hypothesis tests (runs repeat); HUB_FUZZ_SEED=0 for a random run.
    rng = random.Random(int(os.environ.get("HUB_FUZZ_SEED", "1")) or None)
    run = Run()
    # Warm up every route once, then take the baseline: imports and caches are not growth.
    for operation in operations:
        requests.request(operation.method.upper(), base + operation.path
                         .replace("{node}", "n").replace("{name}", "power"))
    # The anonymous calls above are refused before any feed is read, and numpy and the feed
    # engine load on the first read (hub/feed/store.py): read bob's feeds once, as a caller.
    read_key = ctx.users.get(world["bob"]).apikey_read
    now = int(time.time())
    for path, params in (("/feed/list.json", {}),
                         ("/feed/data.json", {"id": world["ids"][0], "start": now - 3600,
                                              "end": now, "interval": 60, "average": 1})):
        answer = requests.get(base + path, params={"apikey": read_key, **params}, timeout=30)
        assert answer.status_code == 200, answer.text
    baseline = peak = rss_mb(proc.pid)
    started = time.monotonic()
    deadline = started + SECONDS
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        rounds += 1
        examples, until = (FIRST_EXAMPLES, float("inf")) if rounds == 1 else (EXAMPLES, deadline)
        for operation in rng.sample(operations, len(operations)):
            callers = _callers(base, ctx, world)
            for caller in rng.sample(list(callers), len(callers)):
                if time.monotonic() > until:
                    break
                _fuzz_operation(operation, caller, callers[caller], base, world, run, rng,
                                until, examples)
            now_mb = rss_mb(proc.pid)
            if now_mb - peak > run.biggest_jump[0]:
                run.biggest_jump = (now_mb - peak, f"{operation.method.upper()} {operation.path}")
            peak = max(peak, now_mb)
            assert proc.poll() is None, log.read_text()[-3000:]
    elapsed = time.monotonic() - started
    growth = peak - baseline
    figures = {"requests": run.requests, "operations": len(run.operations),
               "documented_operations": len(operations), "callers": 6, "rounds": rounds,
               "operations_with_2xx": len(run.succeeded),
               "seconds": round(elapsed, 1), "failures": len(run.failures),
               "rss_baseline_mb": round(baseline, 1), "rss_growth_mb": round(growth, 1),
               "slowest_s": round(run.slowest[0], 3), "slowest": run.slowest[1],
               "over_2s": run.slow,
               "biggest_rss_jump_mb": round(run.biggest_jump[0], 1),
               "biggest_rss_jump": run.biggest_jump[1],
               "statuses": dict(sorted(run.statuses.items()))}
    with capsys.disabled():
        print(f"\napi fuzz: {run.requests} requests to {len(run.operations)} of "
              f"{len(operations)} operations as 6 kinds of caller in {elapsed:.0f} s; "
              f"RSS {baseline:.0f} MB +{growth:.1f} MB; slowest {run.slowest[0]:.2f} s "
              f"({run.slowest[1]}); {len(run.succeeded)} operations answered 2xx; "
              f"failures {len(run.failures)}")
        print(f"  never 2xx: {sorted(set(run.operations) - run.succeeded)}")
        for (label, kind), example in sorted(run.failures.items()):
            print(f"  FAIL {label} [{kind}]: {example}")
        print(json.dumps({"bench": "api_fuzz", **figures}))
    assert not run.failures, f"{len(run.failures)} failures (listed above)"
    assert growth <= RSS_LIMIT_MB, f"hub web grew by {growth:.0f} MB during the run"
    assert len(run.operations) == len(operations), "some operations were never called"
