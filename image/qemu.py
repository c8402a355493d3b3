"""Boot a built image in qemu-system-aarch64 (-M virt, TCG) with Debian's QEMU U-Boot as
firmware, so the image's own boot.scr picks the slot as on a Pi. Networking is user mode
with restrict=on: the guest reaches nothing but the host ports forwarded to it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from image import config as build_config
from image.bootfiles import set_uboot_bootdelay

BOOT_FAT_OFFSET = 4 * 1024 * 1024  # image.disk.FIRST_SECTOR * 512: `mcopy -i img@@<offset>`


@dataclass(frozen=True)
class Built:
    """The last build in a deploy directory, as its manifest describes it."""

    deploy: Path
    manifest: dict

    @property
    def image(self) -> Path:
        return self.deploy / self.manifest["files"]["image"]

    @property
    def u_boot(self) -> Path:
        return self.deploy / self.manifest["files"]["u_boot_qemu"]


def last_build(deploy: Path) -> Built | None:
    latest = deploy / "latest.json"
    if not latest.is_file():
        return None
    manifest = json.loads((deploy / json.loads(latest.read_text())["manifest"]).read_text())
    built = Built(deploy, manifest)
    return built if built.image.is_file() and built.u_boot.is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(image: Path, u_boot: Path, forwards: dict[int, int], *,
            serial: str = "mon:stdio", memory_mib: int = 2048,
            dtb: Path | None = None) -> list[str]:
    """qemu-system-aarch64 argv; `forwards` maps host port (127.0.0.1) → guest port; `dtb`
    replaces the device tree QEMU generates (see `boot_command`)."""
    hostfwd = ",".join(f"hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in forwards.items())
    argv = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72",
        "-accel", "tcg,thread=multi", "-smp", str(min(os.cpu_count() or 2, 4)),
        "-m", str(memory_mib), "-display", "none", "-serial", serial, "-monitor", "none",
        "-bios", str(u_boot),
        "-drive", f"file={image},format=raw,if=virtio,cache=unsafe",
        "-nic", f"user,model=virtio-net-pci,restrict=on,{hostfwd}",
    ]
    return argv + (["-dtb", str(dtb)] if dtb else [])


def boot_command(image: Path, u_boot: Path, forwards: dict[int, int], dtb: Path, *,
                 serial: str = "mon:stdio") -> list[str]:
    """`command` with the device tree QEMU would generate for it, written to `dtb` with
    U-Boot's /config/bootdelay set as in the Pi's firmware DTBs, so the rig's U-Boot starts
    the image as a Pi's does, without Debian's 2 s countdown. Dumped from the same options
    (the tree lists the machine's CPUs, memory and devices; the dump exits at once, so its
    serial goes nowhere), and anew for every start: the dump carries fresh kaslr-seed and
    rng-seed values."""
    dump = command(image, u_boot, forwards, serial="none")
    subprocess.run([*dump, "-machine", f"dumpdtb={dtb}"], check=True, capture_output=True)
    set_uboot_bootdelay(dtb)
    return command(image, u_boot, forwards, serial=serial, dtb=dtb)


def raspi3b_command(kernel: Path, dtb: Path, sd_card: Path, console: Path) -> list[str]:
    """qemu-system-aarch64 argv for QEMU's Pi 3 model: Debian's rpi_arm64 U-Boot as kernel,
    the real DTB, the image as SD card, no network, the second UART (console) to a file."""
    return [
        "qemu-system-aarch64", "-M", "raspi3b", "-accel", "tcg,thread=multi",
        "-kernel", str(kernel), "-dtb", str(dtb),
        "-drive", f"file={sd_card},format=raw,if=sd", "-display", "none", "-monitor", "none",
        "-serial", "null", "-serial", f"file:{console}", "-nic", "none",
    ]


def interactive(port: int) -> int:
    """`./build.sh qemu`: boot a copy of the last image, hub on localhost:<port>."""
    cfg = build_config.load()
    built = last_build(cfg.deploy_dir)
    if built is None:
        print(f"[ERROR] no image in {cfg.deploy_dir}: run ./build.sh first", file=sys.stderr)
        return 1
    copy = cfg.work_dir / "qemu-interactive.img"
    copy.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "--sparse=always", str(built.image), str(copy)], check=True)
    subprocess.run(["truncate", "-s", "+2G", str(copy)], check=True)
    ssh_port, mqtt_port = free_port(), free_port()
    print(f"[INFO] booting a copy of {built.image.name} ({copy})")
    print(f"[INFO] hub http://localhost:{port}/  mqtt localhost:{mqtt_port}  "
          f"ssh -p {ssh_port} root@localhost (key from cydynni.txt)")
    print("[INFO] serial console below; Ctrl-A X quits QEMU")
    argv = boot_command(copy, built.u_boot, {port: 80, mqtt_port: 1883, ssh_port: 22},
                        cfg.work_dir / "qemu-interactive.dtb")
    return subprocess.run(argv).returncode
