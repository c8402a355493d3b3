"""RAUC pre-install handler: refuse a bundle whose build counter is below the floor.

RAUC runs this (system.conf `[handlers] pre-install`) after it has verified the bundle's
signature and mounted its payload through dm-verity, before it writes a byte. RAUC 1.13
gives system handlers no RAUC_MF_VERSION (only bundle hooks get it; found in the QEMU
run), so the version is read from the mounted, verified bundle:
$RAUC_BUNDLE_MOUNT_POINT/manifest.raucm. Floor = max(build counter of the running root filesystem,
/etc/cydynni-image-id; the last committed build, /data/ota/floor). RAUC's own
min-bundle-version check (RAUC >= 1.13) covers the first; this handler also covers the
second and a `--ignore-version-limit` install. Exit 1 = RAUC aborts the install.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from pathlib import Path

from ota import version as versions

IMAGE_ID = Path(os.environ.get("OTA_IMAGE_ID", "/etc/cydynni-image-id"))
FLOOR_FILE = Path(os.environ.get("OTA_FLOOR_FILE", "/data/ota/floor"))


def _int_or_zero(text: str) -> int:
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,15}", text) else 0


def rootfs_counter(image_id: Path = IMAGE_ID) -> int:
    try:
        text = image_id.read_text()
    except OSError:
        return 0
    match = re.search(r"(?m)^OTA_BUILD_COUNTER=(\S+)$", text)
    return _int_or_zero(match.group(1)) if match else 0


def floor(image_id: Path = IMAGE_ID, floor_file: Path = FLOOR_FILE) -> int:
    try:
        stored = _int_or_zero(floor_file.read_text()[:64])
    except OSError:
        stored = 0
    return max(rootfs_counter(image_id), stored)


def check(bundle_version: str, image_id: Path = IMAGE_ID,
          floor_file: Path = FLOOR_FILE) -> str | None:
    """None if the bundle may be installed, else the reason it may not."""
    try:
        counter = versions.counter_of(bundle_version)
    except versions.VersionError as exc:
        return str(exc)
    lowest = floor(image_id, floor_file)
    if counter < lowest:
        return f"bundle build {counter} is below the floor {lowest}: downgrade refused"
    return None


def bundle_version(environ: dict[str, str] | None = None) -> str:
    """The version of the bundle RAUC is installing ('' if it cannot be found)."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("RAUC_MF_VERSION"):
        return environ["RAUC_MF_VERSION"]
    mount = environ.get("RAUC_BUNDLE_MOUNT_POINT")
    if not mount:
        return ""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        manifest = Path(mount, "manifest.raucm")
        if manifest.stat().st_size > 64 * 1024:
            return ""
        parser.read_string(manifest.read_text())
        return parser.get("update", "version", fallback="")
    except (OSError, UnicodeDecodeError, configparser.Error):
        return ""


def main() -> int:
    reason = check(bundle_version())
    if reason:
        print(f"cydynni-ota-floor: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
