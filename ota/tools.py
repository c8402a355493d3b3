"""Running host tools (openssl, rauc, mksquashfs, dd ...) with errors that name the tool."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ota.errors import OtaError, ToolMissing

# Debian package of each tool, for the error message.
PACKAGES = {"openssl": "openssl", "rauc": "rauc", "mksquashfs": "squashfs-tools",
            "unsquashfs": "squashfs-tools", "resize2fs": "e2fsprogs", "e2fsck": "e2fsprogs",
            "dumpe2fs": "e2fsprogs", "debugfs": "e2fsprogs", "sfdisk": "fdisk",
            "fw_printenv": "libubootenv-tool", "fw_setenv": "libubootenv-tool",
            "veritysetup": "cryptsetup-bin"}


def require(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        raise ToolMissing(f"{tool} not found: install the Debian package "
                          f"{PACKAGES.get(tool, tool)}")
    return path


def run(argv: Sequence[str | Path], *, error: type[OtaError] = OtaError, timeout: float = 3600,
        env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a tool, return its stdout; on failure raise `error` with its last stderr lines."""
    argv = [str(a) for a in argv]
    argv[0] = require(argv[0])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise error(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise error(f"{Path(argv[0]).name} failed (exit {done.returncode}): {tail}")
    return done.stdout
