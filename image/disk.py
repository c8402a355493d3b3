"""Assemble the SD image without loop devices or mounts (the CI kernel has no vfat, and
`losetup -P` makes no partition nodes): mkfs.ext4 -d writes each ext4 straight into its
partition of the sparse image file (`-E offset=`, so nothing is copied twice), the boot FAT
is made as a file with mkfs.vfat -C + mcopy and dd'd in, then sfdisk writes the MBR.

Layout (MBR, disk id DISK_ID; see shared contracts):
  p1 FAT32 CYDYNNIBOOT (bootable flag)  p2 ext4 cydynni-root-a   p3 ext4 cydynni-root-b
  p4 ext4 cydynni-data (grown to the card at first boot)
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from image import config as build_config
from image import log
from image.errors import ImageTooSmall

MIB = 1024 * 1024
FIRST_SECTOR = 8192  # 4 MiB alignment, as SD card erase blocks like it
SECTOR = 512
UUID_NAMESPACE = uuid.UUID("8c4a3c52-5a7e-4d2c-9f0b-c7d7a1d20260")
# mkfs.ext4 options kept identical between builds so the same input gives the same layout.
# mke2fs takes one -E: make_ext4 appends the partition offset to EXT4_EXTENDED.
EXT4_OPTS = ["-F", "-q", "-t", "ext4", "-b", "4096", "-I", "256"]
EXT4_EXTENDED = "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0"


@dataclass(frozen=True)
class Partition:
    number: int
    label: str
    kind: str  # sfdisk type
    fs: str
    start: int  # sectors
    size: int  # sectors


def layout(cfg: build_config.BuildConfig) -> list[Partition]:
    sizes = [
        ("CYDYNNIBOOT", "c", "vfat", cfg.mib("BOOT_SIZE_MIB")),
        ("cydynni-root-a", "83", "ext4", cfg.mib("ROOT_SIZE_MIB")),
        ("cydynni-root-b", "83", "ext4", cfg.mib("ROOT_SIZE_MIB")),
        ("cydynni-data", "83", "ext4", cfg.mib("DATA_SIZE_MIB")),
    ]
    parts, start = [], FIRST_SECTOR
    for number, (label, kind, fs, mib) in enumerate(sizes, start=1):
        parts.append(Partition(number, label, kind, fs, start, mib * MIB // SECTOR))
        start += mib * MIB // SECTOR
    return parts


def fs_uuid(cfg: build_config.BuildConfig, label: str) -> str:
    """Stable filesystem UUID per image version and label (A and B differ)."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"{cfg['IMG_NAME']}/{cfg['IMG_VERSION']}/{label}"))


def du_mib(path: Path) -> int:
    out = log.output(["du", "-sx", "--block-size=1M", path])
    return int(out.split()[0])


def make_ext4(cfg: build_config.BuildConfig, part: Partition, image: Path,
              src: Path | None) -> None:
    """mkfs.ext4 (-d src) into partition `part` of `image`, in place; then a read-only fsck.
    nodiscard: the fresh image is all holes anyway, and a discard must never reach beyond
    the partition."""
    offset = part.start * SECTOR
    populate = ["-d", str(src)] if src else []
    extended = f"{EXT4_EXTENDED},offset={offset},nodiscard"
    log.run(["mkfs.ext4", *EXT4_OPTS, "-E", extended, "-L", part.label,
             "-U", fs_uuid(cfg, part.label), *populate, image, f"{part.size * SECTOR // 1024}k"])
    log.run(["e2fsck", "-fn", f"{image}?offset={offset}"])


def make_boot(cfg: build_config.BuildConfig, part: Partition, out: Path, src: Path) -> None:
    out.unlink(missing_ok=True)
    volume_id = cfg["DISK_ID"].removeprefix("0x")
    log.run(["mkfs.vfat", "-F", "32", "-n", part.label, "-i", volume_id, "-C", out,
             str(part.size * SECTOR // 1024)])
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    log.run(["mcopy", "-s", "-p", "-m", "-i", out, *sorted(src.iterdir()), "::/"], env=env)
    log.run(["fsck.vfat", "-n", out])


def sfdisk_script(cfg: build_config.BuildConfig, parts: list[Partition]) -> str:
    lines = ["label: dos", f"label-id: {cfg['DISK_ID']}", "unit: sectors", ""]
    for part in parts:
        bootable = ", bootable" if part.number == 1 else ""
        lines.append(f"start={part.start}, size={part.size}, type={part.kind}{bootable}")
    return "\n".join(lines) + "\n"


def main() -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    work, rootfs = cfg.work_dir, cfg.rootfs
    parts = layout(cfg)
    used = du_mib(rootfs)
    if used * 1.1 + 64 > cfg.mib("ROOT_SIZE_MIB"):
        raise ImageTooSmall(f"rootfs uses {used} MiB; ROOT_SIZE_MIB={cfg['ROOT_SIZE_MIB']} "
                            "leaves under 10 % free: raise ROOT_SIZE_MIB in build.conf")
    log.info(f"rootfs {used} MiB in a {cfg['ROOT_SIZE_MIB']} MiB slot")
    # /boot/firmware is the FAT's mount point: its content goes to p1, not into the slot.
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    image = work / f"{cfg.basename}.img"
    for old in work.glob(f"{cfg['IMG_NAME']}-*.img"):  # earlier versions' images (3.5 GiB)
        old.unlink()
    total = parts[-1].start + parts[-1].size
    log.run(["truncate", "-s", str(total * SECTOR), image])
    boot = work / "part1.img"
    make_boot(cfg, parts[0], boot, work / "bootfs")
    log.run(["dd", f"if={boot}", f"of={image}", "bs=4M", f"seek={parts[0].start * SECTOR}",
             "oflag=seek_bytes", "conv=notrunc,sparse", "status=none"])
    boot.unlink()
    make_ext4(cfg, parts[1], image, rootfs)
    make_ext4(cfg, parts[2], image, None)
    make_ext4(cfg, parts[3], image, empty)
    script = work / "partitions.sfdisk"
    script.write_text(sfdisk_script(cfg, parts))
    with script.open("rb") as handle:
        log.run(["sfdisk", "--no-reread", "--no-tell-kernel", image], stdin=handle.fileno())
    (work / "partitions.json").write_text(json.dumps(
        {"disk_id": cfg["DISK_ID"], "sector_size": SECTOR, "total_sectors": total,
         "partitions": [{**asdict(p), "uuid": fs_uuid(cfg, p.label) if p.fs == "ext4" else None}
                        for p in parts]}, indent=2))
    log.info(f"image {image.name}: {total * SECTOR // MIB} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
