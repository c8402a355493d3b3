"""Bootstrap the arm64 rootfs with mmdebstrap, or restore it from the cache.

The cache key covers everything that decides the bootstrap's result: Debian source settings,
the package lists of all stages, the hook scripts, the initramfs module list, the initramfs
files from overlays/rootfs and this file.
A rebuild that changes only the hub or a role therefore skips the ~5 min of emulated dpkg.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from image import config as build_config
from image import log
from image.chroot import remove_tree
from image.stages import all_packages

HOOKS = Path(__file__).resolve().parent / "hooks"
STEP_FILES = build_config.REPO_DIR / "stage-scripts/00-bootstrap/01-kernel/files"
INITRAMFS_MODULES = STEP_FILES / "initramfs-modules"
# The one initramfs is built in the bootstrap (hooks/customize.sh), before stage 10 copies
# the overlay, so the overlay's initramfs files (scripts/init-top/udev,
# scripts/init-bottom/cydynni-machine-id) are put in first.
INITRAMFS_OVERLAY = build_config.REPO_DIR / "overlays/rootfs/etc/initramfs-tools"


def sources(cfg: build_config.BuildConfig) -> list[str]:
    """apt source lines: the suite, its -updates and, for Debian, -security."""
    components = cfg["COMPONENTS"].replace(",", " ")
    mirror, suite = cfg["MIRROR"].rstrip("/"), cfg["SUITE"]
    lines = [f"deb {mirror} {suite} {components}", f"deb {mirror} {suite}-updates {components}"]
    if mirror.endswith("/debian"):
        lines.append(f"deb {mirror}-security {suite}-security {components}")
    return lines


def cache_key(cfg: build_config.BuildConfig, packages: list[str]) -> str:
    digest = hashlib.sha256()
    for name in ("SUITE", "MIRROR", "COMPONENTS", "ARCH"):
        digest.update(f"{name}={cfg[name]}\n".encode())
    digest.update(Path(cfg["KEYRING"]).read_bytes())
    digest.update(" ".join(packages).encode())
    overlay_files = sorted(p for p in INITRAMFS_OVERLAY.rglob("*") if p.is_file())
    for path in (*sorted(HOOKS.iterdir()), INITRAMFS_MODULES, *overlay_files, Path(__file__)):
        digest.update(str(path.relative_to(build_config.REPO_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def native_python(cfg: build_config.BuildConfig, tree: Path) -> None:
    """The suite's python3-minimal for the build host's architecture, unpacked (not
    installed) into `tree`: hooks/customize.sh byte-compiles the image's modules with it
    (hooks/pycompile.py).  ~3 s: a dozen .debs, no maintainer scripts, nothing emulated."""
    host_arch = log.output(["dpkg", "--print-architecture"]).strip()
    remove_tree(tree)
    log.run([
        "mmdebstrap", "--mode=root", "--variant=extract", f"--arch={host_arch}",
        f"--components={cfg['COMPONENTS']}", f"--keyring={cfg['KEYRING']}",
        "--aptopt=Acquire::Languages \"none\"", "--include=python3-minimal",
        cfg["SUITE"], str(tree), *sources(cfg),
    ], env=cfg.environ())
    # `extract` unpacks into /usr only; the programs look for their loader in /lib64 or /lib.
    for name in ("bin", "sbin", "lib", "lib64"):
        if (tree / "usr" / name).is_dir() and not (tree / name).exists():
            (tree / name).symlink_to(f"usr/{name}")
    (tree / "target").mkdir()
    shutil.copy2(HOOKS / "pycompile.py", tree / "pycompile.py")


def mmdebstrap(cfg: build_config.BuildConfig, packages: list[str], boot_debs: Path) -> None:
    apt_cache = cfg.cache_dir / f"apt-{cfg['SUITE']}-{cfg['ARCH']}"
    apt_cache.mkdir(parents=True, exist_ok=True)
    native = cfg.work_dir / "native-python"
    native_python(cfg, native)
    env = cfg.environ()
    env.update(CYDYNNI_INITRAMFS_MODULES=str(INITRAMFS_MODULES),
               CYDYNNI_INITRAMFS_OVERLAY=str(INITRAMFS_OVERLAY), CYDYNNI_BOOT_DEBS=str(boot_debs),
               CYDYNNI_NATIVE_PYTHON=str(native))
    cmd = [
        "mmdebstrap", "--mode=root", "--variant=minbase", f"--arch={cfg['ARCH']}",
        f"--components={cfg['COMPONENTS']}", f"--keyring={cfg['KEYRING']}",
        "--aptopt=Acquire::Languages \"none\"",
        "--dpkgopt=force-unsafe-io",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        # Test suites never run on the device (231 of numpy's 411 modules, unpacked and
        # byte-compiled under emulation); numpy.testing imports _natype.py.
        "--dpkgopt=path-exclude=/usr/lib/python3/dist-packages/numpy/tests/*",
        "--dpkgopt=path-exclude=/usr/lib/python3/dist-packages/numpy/*/tests/*",
        "--dpkgopt=path-include=/usr/lib/python3/dist-packages/numpy/_core/tests/_natype.py",
        "--dpkgopt=path-exclude=/usr/lib/python3/dist-packages/cheroot/test/*",
        f"--include={','.join(packages)}",
        "--skip=essential/unlink", "--skip=cleanup/apt/lists",
        "--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"",
        f"--setup-hook=sync-in {apt_cache} /var/cache/apt/archives/",
        f"--essential-hook={HOOKS / 'essential.sh'}",
        f"--customize-hook={HOOKS / 'customize.sh'}",
        f"--customize-hook=sync-out /var/cache/apt/archives {apt_cache}",
        cfg["SUITE"], str(cfg.rootfs), *sources(cfg),
    ]
    try:
        log.run(cmd, env=env)
    finally:
        remove_tree(native)


def prune_cache(cfg: build_config.BuildConfig) -> None:
    entries = sorted(cfg.cache_dir.glob("bootstrap-*"), key=lambda p: p.stat().st_mtime)
    for old in entries[: max(0, len(entries) - int(cfg["CACHE_KEEP"]))]:
        log.info(f"removing old bootstrap cache {old}")
        remove_tree(old)


def main() -> int:
    cfg = build_config.load()
    if os.environ.get("BUILD_LOG"):
        log.attach_log(Path(os.environ["BUILD_LOG"]))
    packages = all_packages(cfg)
    key = cache_key(cfg, packages)
    cached = cfg.cache_dir / f"bootstrap-{key}"
    boot_debs = cfg.work_dir / "bootdebs"
    remove_tree(cfg.rootfs)
    remove_tree(boot_debs)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    if (cached / "complete.json").is_file():
        log.info(f"bootstrap cache hit {cached.name}: restoring rootfs")
        log.run(["cp", "-a", "--reflink=auto", cached / "rootfs", cfg.rootfs])
        log.run(["cp", "-a", cached / "bootdebs", boot_debs])
        os.utime(cached)
        return 0
    log.info(f"bootstrap cache miss ({key}): mmdebstrap {cfg['SUITE']} {cfg['ARCH']}, "
             f"{len(packages)} packages")
    started = time.monotonic()
    mmdebstrap(cfg, packages, boot_debs)
    log.info(f"mmdebstrap took {time.monotonic() - started:.0f} s; saving to cache")
    partial = cfg.cache_dir / f".partial-{key}"
    remove_tree(partial)
    partial.mkdir(parents=True)
    log.run(["cp", "-a", "--reflink=auto", cfg.rootfs, partial / "rootfs"])
    shutil.copytree(boot_debs, partial / "bootdebs")
    (partial / "complete.json").write_text(json.dumps(
        {"key": key, "packages": packages, "sources": sources(cfg),
         "seconds": round(time.monotonic() - started)}, indent=2))
    remove_tree(cached)
    partial.rename(cached)
    prune_cache(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
