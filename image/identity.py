"""Stamp the rootfs with what was built: /etc/cydynni-image-id, the RAUC identity in
/etc/rauc/system.conf (compatible string and slot PARTUUIDs from build.conf), and the
installed package list (WORK_DIR/packages.json, for the manifest)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from image import config as build_config
from image import log


def installed_packages(rootfs: Path) -> dict[str, str]:
    """{package: version} from the rootfs's dpkg database (read on the host, no emulation)."""
    out = log.output([
        "dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W",
        "-f=${db:Status-Abbrev}\t${binary:Package}\t${Version}\n",
    ])
    packages = {}
    for line in out.splitlines():
        status, name, version = line.split("\t")
        if status.startswith("ii"):
            packages[name.split(":")[0]] = version
    return dict(sorted(packages.items()))


def partuuid_prefix(disk_id: str) -> str:
    return disk_id.lower().removeprefix("0x")


def set_rauc_identity(cfg: build_config.BuildConfig) -> None:
    path = cfg.rootfs / "etc/rauc/system.conf"
    text = path.read_text()
    text = re.sub(r"(?m)^compatible=.*$", f"compatible={cfg.compatible}", text)
    text = re.sub(r"by-partuuid/[0-9a-f]{8}-0", f"by-partuuid/{partuuid_prefix(cfg['DISK_ID'])}-0",
                  text)
    path.write_text(text)


def main() -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    build_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (cfg.rootfs / "etc/cydynni-image-id").write_text(
        f"IMG_NAME={cfg['IMG_NAME']}\nIMG_VERSION={cfg['IMG_VERSION']}\nTARGET={cfg['TARGET']}\n"
        f"GIT_COMMIT={cfg['GIT_COMMIT']}\nBUILD_TIME={build_time}\n"
        f"RAUC_COMPATIBLE={cfg.compatible}\n"
    )
    set_rauc_identity(cfg)
    packages = installed_packages(cfg.rootfs)
    (cfg.work_dir / "packages.json").write_text(json.dumps(packages, indent=1))
    (cfg.work_dir / "build-time.txt").write_text(build_time)
    log.info(f"{len(packages)} packages installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
