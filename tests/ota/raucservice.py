"""A real RAUC service on the host, for the slot-state half of the agent (status, mark-good,
mark-bad): its own D-Bus session bus, file-backed slots, the U-Boot backend writing a real
binary U-Boot env file (rauc.env) with the real fw_setenv.

RAUC's U-Boot backend calls `fw_printenv`/`fw_setenv` without a config path, so the service
gets a PATH entry whose fw_* scripts add `-c <this test's fw_env.config>` and exec the real
tools. `--override-boot-slot` plays the kernel's `rauc.slot=` argument.

What this cannot do here: install (the host kernel has no dm-verity for verity bundles);
the QEMU end-to-end test covers that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.servers import stop_process
from tests.ota.conftest import COMPATIBLE


@dataclass
class RaucService:
    directory: Path
    env: dict[str, str]
    fw_config: Path

    def fw_env(self) -> dict[str, str]:
        out = subprocess.run(["fw_printenv", "-c", self.fw_config], capture_output=True,
                             text=True, check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def write_env(env_file: Path, values: dict[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    src = env_file.with_suffix(".txt")
    src.write_text(text)
    subprocess.run(["mkenvimage", "-s", "0x4000", "-o", env_file, src], check=True)


@contextlib.contextmanager
def running(directory: Path, keyring: Path, booted: str,
            env_values: dict[str, str]) -> Iterator[RaucService]:
    directory.mkdir(parents=True, exist_ok=True)
    for slot in ("A", "B"):
        subprocess.run(["truncate", "-s", "8M", directory / f"slot{slot}.img"], check=True)
    env_file = directory / "rauc.env"
    write_env(env_file, env_values)
    fw_config = directory / "fw_env.config"
    fw_config.write_text(f"{env_file} 0x0000 0x4000\n")
    bindir = directory / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("fw_printenv", "fw_setenv"):
        real = shutil.which(tool)
        (bindir / tool).write_text(f"#!/bin/sh\nexec {real} -c {fw_config} \"$@\"\n")
        (bindir / tool).chmod(0o755)
    conf = directory / "system.conf"
    conf.write_text(
        f"[system]\ncompatible={COMPATIBLE}\nbootloader=uboot\n"
        f"data-directory={directory}/rauc-data\n\n[keyring]\npath={keyring}\n\n"
        f"[slot.rootfs.0]\ndevice={directory}/slotA.img\ntype=ext4\nbootname=A\n\n"
        f"[slot.rootfs.1]\ndevice={directory}/slotB.img\ntype=ext4\nbootname=B\n")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    address = bus.stdout.readline().strip()
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address, "DBUS_STARTER_BUS_TYPE": "session",
           "PATH": f"{bindir}:{os.environ['PATH']}"}
    log = (directory / "rauc-service.log").open("w")
    service = subprocess.Popen(["rauc", f"--conf={conf}", f"--override-boot-slot={booted}",
                                "service"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["rauc", "status"], env=env, capture_output=True,
                             check=False).returncode != 0:
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("rauc service did not start: " +
                                   (directory / "rauc-service.log").read_text()[-2000:])
            time.sleep(0.2)
        yield RaucService(directory, env, fw_config)
    finally:
        for proc in (service, bus):
            stop_process(proc)
        log.close()
