"""deploy/<name>-<version>-<target>.manifest.json: what was built, from what, and how long
each stage took. The image tests check it against the image's contents."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from image.config import BuildConfig


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(cfg: BuildConfig, durations: dict[str, float]) -> Path:
    work, deploy, base = cfg.work_dir, cfg.deploy_dir, cfg.basename
    xz = deploy / f"{base}.img.xz"
    manifest = {
        "name": cfg["IMG_NAME"],
        "version": cfg["IMG_VERSION"],
        "target": cfg["TARGET"],
        "rauc_compatible": cfg.compatible,
        "build_time": (work / "build-time.txt").read_text().strip(),
        "git_commit": cfg["GIT_COMMIT"],
        "debian": {key.lower(): cfg[key] for key in ("SUITE", "MIRROR", "COMPONENTS", "ARCH")},
        "files": {
            "image": f"{base}.img",
            "image_xz": xz.name,
            "bmap": f"{base}.img.bmap",
            "sha256": f"{base}.sha256",
            "u_boot_qemu": f"{base}.u-boot-qemu.bin",
        },
        "image_bytes": (deploy / f"{base}.img").stat().st_size,
        "image_xz_bytes": xz.stat().st_size,
        "image_xz_sha256": sha256(xz),
        "partition_table": json.loads((work / "partitions.json").read_text()),
        "packages": json.loads((work / "packages.json").read_text()),
        "stage_seconds": durations,
    }
    ota_bundle = work / "ota-bundle.json"  # written by stage 50-export/03-ota-bundle
    if ota_bundle.is_file():
        manifest["ota_bundle"] = json.loads(ota_bundle.read_text())
        manifest["files"]["ota_bundle"] = manifest["ota_bundle"]["file"]
    path = deploy / f"{base}.manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    (deploy / "latest.json").write_text(json.dumps({"manifest": path.name}) + "\n")
    return path
