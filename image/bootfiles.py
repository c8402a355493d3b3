"""Fill WORK_DIR/bootfs with what goes on the boot FAT, from the .debs the bootstrap fetched
(same suite as the rootfs): Pi firmware blobs, U-Boot for the Pi, the Pi DTBs, config.txt,
boot.scr (compiled from overlays/boot/boot.cmd), rauc.env and the headless cydynni.txt.
QEMU's U-Boot goes to WORK_DIR/u-boot-qemu.bin for the boot test and `./build.sh qemu`."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from image import config as build_config
from image import log
from image.chroot import remove_tree

OVERLAY_BOOT = build_config.REPO_DIR / "overlays/boot"
FIRMWARE_FILES = (
    "bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
)
# DTBs the Pi firmware hands to U-Boot (upstream_kernel=1 names); Linux gets the slot's own.
DTB_GLOBS = ("bcm2837-rpi-3-*.dtb", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb",
             "bcm2837-rpi-cm3-io3.dtb", "bcm2711-rpi-cm4-io.dtb")
# U-Boot takes /config/bootdelay in its control DTB over its environment's (common/autoboot.c,
# bootdelay_process), and the Pi firmware hands U-Boot the DTBs above. Debian's U-Boot counts
# 2 s down on every boot; 0 boots at once, and a key already waiting on the serial console
# still stops it (U-Boot checks once).
UBOOT_BOOTDELAY = 0
INITIAL_BOOT_STATE = {"BOOT_ORDER": "A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_SEQ": "0"}


def extract(debs: Path, package: str, dest: Path) -> Path:
    matches = sorted(debs.glob(f"{package}_*.deb"))
    if not matches:
        raise FileNotFoundError(f"{debs}/{package}_*.deb missing: the bootstrap did not fetch it")
    log.run(["dpkg-deb", "-x", matches[-1], dest])
    return dest


def set_uboot_bootdelay(dtb: Path) -> None:
    """Write U-Boot's /config/bootdelay into a DTB (the node is created when missing)."""
    log.run(["fdtput", "-p", "-t", "i", dtb, "/config", "bootdelay", str(UBOOT_BOOTDELAY)])


def write_rauc_env(path: Path, work: Path) -> None:
    """Initial A/B state: only slot A is bootable until an OTA install fills slot B."""
    source = work / "rauc-env.txt"
    source.write_text("".join(f"{k}={v}\n" for k, v in INITIAL_BOOT_STATE.items()))
    log.run(["mkenvimage", "-s", "0x4000", "-o", path, source])


def main() -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    work, debs = cfg.work_dir, cfg.work_dir / "bootdebs"
    unpacked, bootfs = work / "bootdebs-x", work / "bootfs"
    remove_tree(unpacked)
    remove_tree(bootfs)
    bootfs.mkdir(parents=True)
    for package in ("raspi-firmware", "u-boot-rpi", "u-boot-qemu"):
        extract(debs, package, unpacked)
    firmware = unpacked / "usr/lib/raspi-firmware"
    for name in FIRMWARE_FILES:
        shutil.copy2(firmware / name, bootfs / name)
    shutil.copy2(unpacked / "usr/share/doc/raspi-firmware/copyright",
                 bootfs / "LICENCE.raspi-firmware.txt")
    shutil.copy2(unpacked / "usr/lib/u-boot/rpi_arm64/u-boot.bin", bootfs / "u-boot.bin")
    shutil.copy2(unpacked / "usr/lib/u-boot/qemu_arm64/u-boot.bin", work / "u-boot-qemu.bin")
    broadcom = (cfg.rootfs / "boot/dtbs").resolve() / "broadcom"
    for pattern in DTB_GLOBS:
        for dtb in sorted(broadcom.glob(pattern)):
            shutil.copy2(dtb, bootfs / dtb.name)
            set_uboot_bootdelay(bootfs / dtb.name)
    shutil.copy2(OVERLAY_BOOT / "config.txt", bootfs / "config.txt")
    shutil.copy2(OVERLAY_BOOT / "cydynni.txt", bootfs / "cydynni.txt")
    log.run(["mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none",
             "-n", "cydynni A/B boot", "-d", OVERLAY_BOOT / "boot.cmd", bootfs / "boot.scr"])
    write_rauc_env(bootfs / "rauc.env", work)
    # the second copy (boot.cmd, ota/bootenv.py): a power cut during a write loses neither
    shutil.copy2(bootfs / "rauc.env", bootfs / "rauc.env.b")
    log.info(f"boot FAT: {len(list(bootfs.iterdir()))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
