"""Release bundles derived from a built SD image without rebuilding it: cut slot A out,
change a few files with debugfs (no mount), shrink, sign. How the QEMU end-to-end test gets
a v2 (newer build counter) and a v3 (newer, with a hub that cannot start)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from ota import bundle, keys
from ota import version as versions


def debugfs_write(image: Path, files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="derive-") as tmp:
        script = []
        for index, (path, content) in enumerate(files.items()):
            local = Path(tmp) / f"f{index}"
            local.write_bytes(content)
            local.chmod(0o644)
            script += [f"rm {path}", f"write {local} {path}"]
        commands = Path(tmp) / "commands"
        commands.write_text("\n".join(script) + "\n")
        subprocess.run(["debugfs", "-w", "-f", commands, image], check=True,
                       capture_output=True)


def debugfs_cat(image: Path, path: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat {path}", image], check=True,
                          capture_output=True, text=True).stdout


def derive(sd_image: Path, out: Path, *, counter: int, display: str, signer: keys.KeyDir,
           compatible: str, extra: dict[str, bytes] | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="derive-", dir=out.parent) as tmp:
        rootfs = bundle.rootfs_from_sd_image(sd_image, Path(tmp) / "rootfs.ext4", shrink=False)
        version = versions.rauc_version(counter, display)
        image_id = debugfs_cat(rootfs, "/etc/cydynni-image-id")
        image_id = re.sub(r"(?m)^OTA_BUILD_COUNTER=.*$", f"OTA_BUILD_COUNTER={counter}", image_id)
        image_id = re.sub(r"(?m)^OTA_VERSION=.*$", f"OTA_VERSION={version}", image_id)
        system_conf = re.sub(r"(?m)^min-bundle-version=.*$", f"min-bundle-version={counter}.0.0",
                             debugfs_cat(rootfs, "/etc/rauc/system.conf"))
        debugfs_write(rootfs, {"/etc/cydynni-image-id": image_id.encode(),
                               "/etc/rauc/system.conf": system_conf.encode(),
                               **(extra or {})})
        bundle.shrink_ext4(rootfs)
        bundle.make(rootfs, out, compatible=compatible, counter=counter,
                    display_version=display, cert=signer.cert, key=signer.key)
    return out
