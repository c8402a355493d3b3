"""The same image on QEMU's Raspberry Pi 3 model (-M raspi3b, TCG): Debian's rpi_arm64
U-Boot runs the image's boot.scr (Pi branch: moved load addresses, slot DTB, mini-UART
console), and Linux comes up from the SD card with the real Pi 3 device tree, SD host
controller and the MODULES=list initramfs (bcm2835 drivers loaded by udev for their
devices, bcm2835_wdt by /init).

QEMU stands in for the VideoCore firmware (it loads u-boot.bin and the DTB itself), so
config.txt and start.elf are not exercised here; see image/README.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from image.qemu import BOOT_FAT_OFFSET, Built, raspi3b_command

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
TIMEOUT = 900
SD_BYTES = 4 << 30  # the model wants a power-of-two card


def test_image_boots_to_login_on_raspi3b(built: Built, tmp_path) -> None:
    disk, console = tmp_path / "sd.img", tmp_path / "console.log"
    subprocess.run(["cp", "--sparse=always", str(built.image), str(disk)], check=True)
    assert disk.stat().st_size <= SD_BYTES
    subprocess.run(["truncate", "-s", str(SD_BYTES), str(disk)], check=True)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for name in ("u-boot.bin", "bcm2837-rpi-3-b.dtb"):
        subprocess.run(["mcopy", "-i", f"{disk}@@{BOOT_FAT_OFFSET}", f"::/{name}",
                        str(tmp_path / name)], check=True, env=env)
    argv = raspi3b_command(tmp_path / "u-boot.bin", tmp_path / "bcm2837-rpi-3-b.dtb", disk,
                           console)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    try:
        deadline, text = time.monotonic() + TIMEOUT, ""
        while time.monotonic() < deadline and process.poll() is None:
            text = console.read_text(errors="replace") if console.exists() else ""
            if re.search(r"login: *$", text.rstrip() + " ") or "Reboot failed" in text:
                break
            time.sleep(5)
    finally:
        process.kill()
        process.wait()
    tail = "\n".join(text.splitlines()[-30:])
    # boot.cmd names the boot-state copy it used (rauc.env or rauc.env.b) and its sequence
    assert re.search(r"cydynni: state from rauc\.env(\.b)?, order A, A_LEFT 2, B_LEFT 0, "
                     r"seq \d, slot A", text), tail
    assert "Machine model: Raspberry Pi 3 Model B" in text, tail
    assert "rauc.slot=A" in text and "root=PARTUUID=" in text, tail
    assert "mmcblk0p2" in text, tail
    assert re.search(r"login: *$", text.rstrip() + " "), f"no login prompt:\n{tail}"
