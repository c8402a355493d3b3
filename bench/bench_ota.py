"""Bench: the update agent against a real goosebit on 127.0.0.1, with `curl` as the reference.

- a ~200 MB signed verity bundle (an ext4 root image of random bytes, so squashfs cannot
  shrink it) downloaded by the agent, run as its own process (bench/ota_agent_driver.py):
  DDI poll → deploymentBase → resumable download with its hash check (sha256 when the
  server announces one; goosebit 0.2.12 announces sha1 only) — wall seconds and the agent
  process's peak RSS (VmHWM), against `curl` fetching the same artifact URL with the same
  token (wall seconds, VmHWM sampled from /proc); best of REPEAT rounds, a fresh hub each;
- the agent's bundle check after the download (Agent.check_bundle: RAUC signature with the
  device keyring, compatible, build-counter floor — what runs before `rauc install`),
  against a bare `rauc info` of the same bundle;
- CPU seconds (user+sys, with children such as `rauc status`) of one idle poll cycle of a
  running agent, and of a whole `python3 -m ota.agent once` process, against `curl` making
  the same poll request with the same TargetToken header.

`rauc install` is not measured here: this host's kernel has no dm-verity, so a verity
bundle cannot be installed on it; the QEMU journey (tests/ota/test_ota_qemu.py) installs.
The agent talks to a real RAUC service with file-backed slots (tests/ota/raucservice.py),
whose booted slot is left uncommitted, so the agent stops after the check ("waiting").
Run: `./build.sh bench ota`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ota import bundle, keys
from ota.agent import config as agent_config
from ota.agent.ddi import DdiClient
from ota.fleet import Goosebit as Fleet
from tests.ota import raucservice
from tests.ota.conftest import COMPATIBLE
from tests.ota.goosebit import PASSWORD, USER, Goosebit

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD_MIB = 200  # random content of the root image: the bundle is about this size
FILE_MIB = 8
IDLE_CYCLES = 5
REPEAT = 3
MIB = 1024 * 1024


@dataclass
class Measured:
    wall: float
    cpu: float  # user+sys of the process and its waited-for children (wait4)
    vm_hwm_kib: int  # the process's own peak RSS (VmHWM), sampled from /proc while it runs
    stdout: str


def vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run argv; its CPU from wait4, its peak RSS from /proc/<pid>/status VmHWM.

    Not wait4's ru_maxrss: Linux carries the forking parent's resident set into the
    child's maxrss at exec, and this bench holds a 200 MB bundle in memory. VmHWM belongs
    to the new program's own address space; it only grows, so the last sample before the
    exit is the peak, short of what the final few milliseconds add."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        peak, usage, status = 0, None, 0
        while usage is None:
            peak = max(peak, vm_hwm(proc.pid))
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage = rusage
            else:
                time.sleep(0.002)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: "
                               f"{err.read().decode(errors='replace')[-3000:]}{text[-1000:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak, text)


def emit(name: str, value: float, unit: str, reference: float | None) -> None:
    print(json.dumps({"bench": name, "value": round(value, 6), "unit": unit,
                      "reference": None if reference is None else round(reference, 6)}),
          flush=True)


def root_image(work: Path) -> Path:
    """An ext4 root filesystem of PAYLOAD_MIB random bytes (incompressible)."""
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/cydynni-image-id").write_text("IMG_NAME=cydynni-hub\nOTA_BUILD_COUNTER=1\n")
    for n in range(PAYLOAD_MIB // FILE_MIB):
        with (tree / f"payload{n:02d}.bin").open("wb") as out:
            for _ in range(FILE_MIB):
                out.write(os.urandom(MIB))
    image = work / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, image, f"{PAYLOAD_MIB + 24}M"],
                   check=True, capture_output=True)
    subprocess.run(["rm", "-rf", tree], check=True)
    return image


def agent_config_file(directory: Path, server: str, device: str, token: str) -> Path:
    directory.mkdir(parents=True)
    path = directory / "agent.json"
    path.write_text(json.dumps({"server_url": server, "tenant": "DEFAULT",
                                "controller_id": device, "token": token}))
    path.chmod(0o600)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ota-", dir="/var/tmp") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        started = time.perf_counter()
        dev = keys.generate(work / "keys", organisation="Bench Hub", development=True)
        image = root_image(work)
        raucb = work / "bench.raucb"
        made = bundle.make(image, raucb, compatible=COMPATIBLE, counter=202612020000,
                           display_version="bench", cert=dev.cert, key=dev.key)
        image.unlink()
        print(f"bundle: {made.size / 1e6:.1f} MB ({made.version}), made in "
              f"{time.perf_counter() - started:.1f} s", flush=True)

        server = stack.enter_context(Goosebit.start(work / "goosebit"))
        fleet = Fleet(server.url, USER, PASSWORD)
        software = fleet.upload(raucb)
        conf = work / "system.conf"
        conf.write_text(f"[system]\ncompatible={COMPATIBLE}\nbootloader=uboot\n")
        # A real RAUC service (file-backed slots) answers the agent's `rauc status`. Its
        # booted slot A is not committed (BOOT_A_LEFT=0): the agent downloads and checks,
        # then waits instead of calling `rauc install`, which this host cannot run.
        rauc = stack.enter_context(raucservice.running(
            work / "rauc", dev.ca_cert, "A", {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "0",
                                             "BOOT_B_LEFT": "3"}))
        env = {**rauc.env, "PYTHONPATH": str(ROOT)}
        driver = [sys.executable, "-m", "bench.ota_agent_driver"]
        trust = ["--keyring", str(dev.ca_cert), "--system-conf", str(conf)]

        # (a) download through the agent, then curl on the same artifact URL, alternating;
        # (b) the agent's check before install (timed inside its cycle), then a bare
        # `rauc info` of the same bundle. Best of REPEAT rounds: a fresh hub each round.
        agents: list[dict] = []
        curls: list[Measured] = []
        bares: list[Measured] = []
        for round_ in range(REPEAT):
            device, token = f"bench-dl{round_}-{secrets.token_hex(4)}", secrets.token_hex(12)
            fleet.register(device, token)
            config = agent_config_file(work / f"dl{round_}", server.url, device, token)
            # its first poll sends the inventory (configData) goosebit matches bundles with
            measured([sys.executable, "-m", "ota.agent", "once", "--config", str(config),
                      *trust], env)
            fleet.assign([device], str(software))
            run = measured([*driver, "download", str(config), *trust], env)
            agent = json.loads(run.stdout.splitlines()[-1])
            agent["sampled_hwm_kib"] = run.vm_hwm_kib
            agents.append(agent)
            downloaded = config.parent / "download/update.raucb"
            if agent["bundle_version"] != made.version or sha256(downloaded) != sha256(raucb):
                raise RuntimeError(f"the agent did not download the bundle: {agent}")
            bares.append(measured(["rauc", f"--keyring={dev.ca_cert}", "info",
                                   "--output-format=json", str(downloaded)], rauc.env))
            downloaded.unlink()

            ddi = DdiClient(agent_config.load(config, state_dir=config.parent))
            artifact = ddi.deployment(ddi.poll().deployment_url).artifact
            by_curl = work / "curl.raucb"
            curls.append(measured(["curl", "-sSf", "-o", str(by_curl), "-H",
                                   f"Authorization: TargetToken {token}", artifact.url]))
            if sha256(by_curl) != sha256(raucb):
                raise RuntimeError("curl fetched something else")
            by_curl.unlink()
        first = agents[0]
        print(f"agent: state {first['status']} ({first['message']}); "
              f"{'; '.join(first['notes'])} (goosebit 0.2.12 announces "
              f"{', '.join(sorted(artifact.hashes))} only)", flush=True)
        mb = made.size / 1e6
        seconds = [a["download_seconds"] for a in agents]
        curl_seconds = [c.wall for c in curls]
        print(f"download {mb:.0f} MB, best of {REPEAT}: agent {min(seconds):.2f} s "
              f"({mb / min(seconds):.0f} MB/s; poll + deployment + download + hash check; "
              f"all: {fmt(seconds)}), curl {min(curl_seconds):.2f} s "
              f"({mb / min(curl_seconds):.0f} MB/s; all: {fmt(curl_seconds)})", flush=True)
        peak = max(a["vm_hwm_kib"] for a in agents) / 1024
        curl_peak = max(c.vm_hwm_kib for c in curls) / 1024
        print(f"peak RSS (VmHWM, highest of {REPEAT}): agent process {peak:.1f} MiB (its own "
              f"reading at the end; sampled from outside "
              f"{max(a['sampled_hwm_kib'] for a in agents) / 1024:.1f} MiB), curl "
              f"{curl_peak:.1f} MiB (sampled)", flush=True)
        emit("ota_download_200mb_seconds", min(seconds), "s", min(curl_seconds))
        emit("ota_download_peak_rss", peak, "MiB", curl_peak)

        checks = [a["check_seconds"] for a in agents]
        bare = [b.wall for b in bares]
        print(f"bundle check (signature + compatible + floor), best of {REPEAT}: agent "
              f"{min(checks):.3f} s right after its download (all: {fmt(checks)}; again, warm: "
              f"{fmt([a['check_again_seconds'] for a in agents])}), bare `rauc info` "
              f"{min(bare):.3f} s (all: {fmt(bare)}). `rauc install` itself is measured in "
              "the QEMU journey (tests/ota/test_ota_qemu.py), not here: this host has no "
              "dm-verity.", flush=True)
        emit("ota_bundle_check_seconds", min(checks), "s", min(bare))

        # (c) one idle poll: a warm agent's cycle, a whole `ota.agent once`, and curl
        device, token = f"bench-idle-{secrets.token_hex(4)}", secrets.token_hex(12)
        fleet.register(device, token)
        config = agent_config_file(work / "idle", server.url, device, token)
        idle = json.loads(measured([*driver, "idle", str(config), *trust, "--cycles",
                                    str(IDLE_CYCLES)], env).stdout.splitlines()[-1])
        if idle["server_error"]:
            raise RuntimeError(f"idle poll failed: {idle['server_error']}")
        once = measured([sys.executable, "-m", "ota.agent", "once", "--config", str(config),
                         *trust], env)
        base = agent_config.load(config, state_dir=config.parent).base_url
        polls = [measured(["curl", "-sSf", "-o", "/dev/null", "-H",
                           f"Authorization: TargetToken {token}", "-H",
                           "Accept: application/json", base]) for _ in range(IDLE_CYCLES)]
        cycle_cpu = sum(idle["cycle_cpu_seconds"]) / IDLE_CYCLES
        curl_cpu = sum(p.cpu for p in polls) / IDLE_CYCLES
        print(f"idle poll CPU (user+sys, mean of {IDLE_CYCLES}): running agent "
              f"{cycle_cpu * 1000:.1f} ms per cycle (incl. its `rauc status`), whole "
              f"`python3 -m ota.agent once` process {once.cpu * 1000:.0f} ms, curl "
              f"{curl_cpu * 1000:.1f} ms", flush=True)
        emit("ota_idle_poll_cpu_seconds", cycle_cpu, "s", curl_cpu)
        emit("ota_idle_poll_process_cpu_seconds", once.cpu, "s", curl_cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
