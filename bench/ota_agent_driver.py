"""The update agent as its own process, for bench_ota.py: the real `ota.agent` code, with
clocks around it. Prints one JSON object on stdout.

    python3 -m bench.ota_agent_driver download CONFIG --keyring K --system-conf C
        one poll cycle that takes a deployment: DDI poll → deploymentBase → resumable
        download with its hash check (sha256, or sha1 if that is all the server
        announces) → the bundle check before `rauc install` (timed on its own)
    python3 -m bench.ota_agent_driver idle CONFIG --keyring K --system-conf C --cycles N
        one warm-up cycle (registration: configData), then N idle poll cycles, each timed
        in CPU seconds (user+sys, this process plus its children, e.g. `rauc status`)

The environment must reach a RAUC service (bench_ota.py starts one with file-backed slots).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from ota.agent import config as agent_config
from ota.agent.core import Agent


def cpu_seconds() -> float:
    """User+sys CPU of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def vm_hwm_kib() -> int:
    """Peak resident set of this process (not its children), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def make_agent(args: argparse.Namespace) -> Agent:
    cfg = agent_config.load(args.config, state_dir=args.config.parent, keyring=args.keyring,
                            system_conf=args.system_conf)
    return Agent(cfg)


def download(agent: Agent) -> dict:
    marks: dict[str, float] = {}
    check = agent.check_bundle

    def timed_check(path: Path) -> dict:
        marks["check_start"] = time.perf_counter()
        try:
            return check(path)
        finally:
            marks["check_end"] = time.perf_counter()

    agent.check_bundle = timed_check  # the same method, with a clock around it
    started = time.perf_counter()
    agent.cycle()
    ended = time.perf_counter()
    if "check_start" not in marks:
        raise SystemExit(f"the agent did not reach the bundle check: {agent.state} "
                         f"{agent.status.get('last_result') or agent.status.get('server_error')}")
    again = time.perf_counter()
    check(agent.bundle_path)  # a second time, warm: how much of the first was cold caches
    again = time.perf_counter() - again
    return {"download_seconds": marks["check_start"] - started,
            "check_again_seconds": again,
            "check_seconds": marks["check_end"] - marks["check_start"],
            "cycle_seconds": ended - started, "phase": agent.state.get("phase"),
            "status": agent.status.get("state"), "message": agent.status.get("message"),
            "bundle_version": agent.state.get("bundle_version"),
            "notes": agent.state.get("notes") or [],
            "vm_hwm_kib": vm_hwm_kib()}


def idle(agent: Agent, cycles: int) -> dict:
    agent.cycle()  # registration: the first poll of a new hub also sends its configData
    costs = []
    for _ in range(cycles):
        before = cpu_seconds()
        agent.cycle()
        costs.append(cpu_seconds() - before)
        if agent.state.get("phase") != "idle":
            raise SystemExit(f"not idle: {agent.state}")
    return {"cycle_cpu_seconds": costs, "server_error": agent.status.get("server_error"),
            "vm_hwm_kib": vm_hwm_kib()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.ota_agent_driver")
    parser.add_argument("mode", choices=["download", "idle"])
    parser.add_argument("config", type=Path)
    parser.add_argument("--keyring", type=Path, required=True)
    parser.add_argument("--system-conf", type=Path, required=True)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args(argv)
    agent = make_agent(args)
    result = download(agent) if args.mode == "download" else idle(agent, args.cycles)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
