"""Mount the API filesystems into the rootfs for chroot work, and never leave them behind.

Deleting a rootfs with /dev still bind-mounted would delete the host's /dev, so every
removal goes through remove_tree(), which refuses while anything is mounted below it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from image import log
from image.errors import MountLeft


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first."""
    root = path.resolve()
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = Path(line.split()[4].replace("\\040", " "))
        if mount_point == root or root in mount_point.parents:
            found.append(mount_point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all(path: Path) -> None:
    for mount_point in mounts_below(path):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)
    left = mounts_below(path)
    if left:
        raise MountLeft(f"still mounted below {path}: {', '.join(map(str, left))}")


def remove_tree(path: Path) -> None:
    """rm -rf, but only once nothing is mounted below the path."""
    if not path.exists():
        return
    unmount_all(path)
    shutil.rmtree(path)


@contextmanager
def api_filesystems(rootfs: Path) -> Iterator[None]:
    """/proc, /sys, /dev, /dev/pts, /run and the host's resolv.conf inside the rootfs."""
    resolv = rootfs / "etc/resolv.conf"
    saved = rootfs / "etc/resolv.conf.cydynni-build"
    had_resolv = resolv.exists() or resolv.is_symlink()
    try:
        for source, target, args in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--bind"]),
            ("devpts", "dev/pts", ["-t", "devpts", "-o", "newinstance,ptmxmode=0666"]),
            ("tmpfs", "run", ["-t", "tmpfs", "-o", "mode=0755"]),
        ):
            (rootfs / target).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, source, str(rootfs / target)], check=True)
        if had_resolv:
            resolv.rename(saved)
        shutil.copyfile("/etc/resolv.conf", resolv)
        yield
    finally:
        if resolv.exists() and not resolv.is_symlink():
            resolv.unlink()
        if saved.exists() or saved.is_symlink():
            saved.rename(resolv)
        unmount_all(rootfs / "run")
        for target in ("dev/pts", "dev", "sys", "proc"):
            unmount_all(rootfs / target)


def run_in_chroot(rootfs: Path, script: Path, env: dict[str, str]) -> None:
    """Run a shell script inside the rootfs (fed on stdin, so it needs no copy inside)."""
    with api_filesystems(rootfs), script.open("rb") as handle:
        log.run(["chroot", str(rootfs), "/bin/sh", "-e", "-s"], env=env, stdin=handle.fileno())
