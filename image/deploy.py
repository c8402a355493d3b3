"""Publish the build into DEPLOY_DIR: the raw image (what the boot test copies), .img.xz
(xzimage.py: one xz stream, zeros compressed once), .bmap (bmaptool copy skips the empty
parts of the card), .sha256 and QEMU's U-Boot."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from image import config as build_config
from image import log, xzimage


def main() -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    deploy, base = cfg.deploy_dir, cfg.basename
    deploy.mkdir(parents=True, exist_ok=True)
    for old in deploy.glob(f"{cfg['IMG_NAME']}-*"):
        old.unlink()
    raw = deploy / f"{base}.img"
    started = time.monotonic()
    # A hard link, not a copy: the next build makes a new file in WORK_DIR, and writing
    # ~0.8 GiB again only to read it back slows the xz below (writeback competes with it).
    try:
        os.link(cfg.work_dir / f"{base}.img", raw)
    except OSError:  # WORK_DIR on another filesystem
        log.run(["cp", "--sparse=always", cfg.work_dir / f"{base}.img", raw])
    shutil.copy2(cfg.work_dir / "u-boot-qemu.bin", deploy / f"{base}.u-boot-qemu.bin")
    log.run(["bmaptool", "create", "-o", deploy / f"{base}.img.bmap", raw])
    log.info(f"raw image and bmap took {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    xz = deploy / f"{base}.img.xz"
    log.info(f"xz {cfg['XZ_OPTS']} {raw.name} (blocks of zeros compressed once)")
    xzimage.compress_file(raw, xz, xzimage.parse_options(cfg["XZ_OPTS"]))
    log.info(f"xz took {time.monotonic() - started:.0f} s: {xz.stat().st_size // 2**20} MiB")
    sums = log.output(["sha256sum", xz.name, f"{base}.img.bmap"], cwd=deploy)
    (deploy / f"{base}.sha256").write_text(sums)
    return 0


if __name__ == "__main__":
    sys.exit(main())
