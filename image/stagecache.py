"""Stage cache: the rootfs as it is after a stage marked with a `CACHE` file, kept in CACHE_DIR
and restored instead of running that stage and every stage before it.

The key hashes everything those stages read, so a change to any of it rebuilds them:
  - the bootstrap cache key (Debian settings, every package list, hooks, module list);
  - every build.conf value except LATE_VARIABLES (read only by later stages);
  - every file in the stage folders up to the marked one (SKIP files included);
  - the playbooks their NN-ansible files apply and those playbooks' roles;
  - the paths the CACHE file lists (one per line, repo-relative, `-path` leaves a path out);
  - the host's Ansible version.
What is left out is what later stages read: stage-scripts/20-services/CACHE leaves out the
hub app and its role, so a change to hub/ restores the cached rootfs and runs only 30-hub on.

Layout: CACHE_DIR/stage-<stage>-<key>/{rootfs,bootdebs,complete.json}; CACHE_KEEP entries are
kept (least recently used removed first).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from image import bootstrap, log
from image.chroot import remove_tree
from image.config import REPO_DIR, BuildConfig
from image.errors import ConfigError
from image.stages import actions, all_packages, playbook_roles, playbooks, role_dir, step_dirs

MARKER = "CACHE"
# build.conf variables no stage up to a CACHE marker may read: identity, disk layout, export,
# OTA signing and where things go. Every other variable is part of the key.
LATE_VARIABLES = frozenset({
    "IMG_VERSION", "GIT_COMMIT", "BOOT_SIZE_MIB", "ROOT_SIZE_MIB", "DATA_SIZE_MIB", "DISK_ID",
    "HUB_PLAYBOOK", "WORK_DIR", "CACHE_DIR", "CACHE_KEEP", "DEPLOY_DIR", "XZ_OPTS",
    "RAUC_MKSQUASHFS_ARGS", "STAGE_LIST", "OTA_BUILD_COUNTER", "OTA_SIGNING_CERT",
    "OTA_SIGNING_KEY", "OTA_KEYRING", "OTA_KEY_DIR",
})
# What WORK_DIR holds after the cached stages that later stages read.
CACHED_DIRS = ("rootfs", "bootdebs")
_SKIPPED_NAMES = {"__pycache__"}


@dataclass(frozen=True)
class CachePoint:
    """The last stage with a CACHE marker, the stages it covers and their key."""

    stage: Path
    covered: list[Path]
    key: str

    def entry(self, cfg: BuildConfig) -> Path:
        return cfg.cache_dir / f"stage-{self.stage.name}-{self.key}"


def _walk(path: Path, excluded: set[Path], found: list[Path]) -> None:
    """`path` and everything below it, in name order, without excluded paths or bytecode."""
    if path in excluded or path.name in _SKIPPED_NAMES or path.suffix == ".pyc":
        return
    found.append(path)
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            _walk(child, excluded, found)


def _hash_entry(digest: hashlib._Hash, path: Path) -> None:
    """Name, type, mode, and symlink target or contents of one file or folder."""
    label = str(path.relative_to(REPO_DIR)) if REPO_DIR in path.parents else str(path)
    info = path.lstat()
    digest.update(f"{label}\0{stat.S_IFMT(info.st_mode):o}\0{info.st_mode & 0o7777:o}\0".encode())
    if stat.S_ISLNK(info.st_mode):
        digest.update(os.readlink(path).encode() + b"\0")
    elif stat.S_ISREG(info.st_mode):
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def listed_paths(marker: Path) -> tuple[list[Path], set[Path]]:
    """(included, excluded) paths of a CACHE file; a missing path is a config error."""
    included, excluded = [], set()
    for number, line in enumerate(marker.read_text().splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        leave_out = entry.startswith("-")
        path = REPO_DIR / entry.removeprefix("-").strip()
        if not path.exists():
            raise ConfigError(f"{marker}:{number}: {path} does not exist")
        (excluded.add(path) if leave_out else included.append(path))
    return included, excluded


def _ansible_version() -> str:
    try:
        out = subprocess.run(["ansible-playbook", "--version"], capture_output=True, text=True,
                             check=True).stdout
        return out.splitlines()[0] if out else ""
    except (OSError, subprocess.CalledProcessError):
        return "no ansible"


def input_files(cfg: BuildConfig, covered: list[Path], marker: Path) -> list[Path]:
    """Every file and folder the key hashes: the covered stage folders, the playbooks and
    roles they apply, and the CACHE file's paths (minus its `-path` lines)."""
    included, excluded = listed_paths(marker)
    roots = list(covered)
    for stage in covered:
        for step in step_dirs(stage):
            for action in actions(step):
                if action.kind != "ansible":
                    continue
                for playbook in playbooks(action.path, cfg.values):
                    roots.append(playbook)
                    roots.extend(role_dir(role, playbook) for role in playbook_roles(playbook))
    found: list[Path] = []
    for root in [*roots, *included]:
        _walk(root, excluded, found)
    return found


def cache_key(cfg: BuildConfig, covered: list[Path], marker: Path) -> str:
    digest = hashlib.sha256()
    digest.update(f"bootstrap={bootstrap.cache_key(cfg, all_packages(cfg))}\n".encode())
    for name in sorted(set(cfg.values) - LATE_VARIABLES):
        digest.update(f"{name}={cfg[name]}\n".encode())
    digest.update(f"ansible={_ansible_version()}\n".encode())
    for path in input_files(cfg, covered, marker):
        _hash_entry(digest, path)
    return digest.hexdigest()[:16]


def cache_point(cfg: BuildConfig, stages: list[Path]) -> CachePoint | None:
    """The last stage (not skipped) with a CACHE marker, or None (then nothing is cached)."""
    active = [s for s in stages if not (s / "SKIP").exists()]
    marked = [i for i, s in enumerate(active) if (s / MARKER).is_file()]
    if not marked:
        return None
    last = marked[-1]
    covered = active[: last + 1]
    return CachePoint(active[last], covered, cache_key(cfg, covered, active[last] / MARKER))


def restore(cfg: BuildConfig, point: CachePoint) -> bool:
    """Put the cached WORK_DIR parts in place; False on a cache miss."""
    entry = point.entry(cfg)
    if not (entry / "complete.json").is_file():
        return False
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    for name in CACHED_DIRS:
        remove_tree(cfg.work_dir / name)
        log.run(["cp", "-a", "--reflink=auto", entry / name, cfg.work_dir / name])
    os.utime(entry)
    return True


def save(cfg: BuildConfig, point: CachePoint) -> None:
    """Copy the WORK_DIR parts later stages read into the cache (complete.json last)."""
    started = time.monotonic()
    entry = point.entry(cfg)
    partial = entry.with_name(f".partial-{entry.name}")
    remove_tree(partial)
    partial.mkdir(parents=True)
    for name in CACHED_DIRS:
        log.run(["cp", "-a", "--reflink=auto", cfg.work_dir / name, partial / name])
    (partial / "complete.json").write_text(json.dumps(
        {"stage": point.stage.name, "key": point.key,
         "stages": [s.name for s in point.covered]}, indent=2))
    remove_tree(entry)
    partial.rename(entry)
    log.info(f"stage cache saved: {entry.name} ({time.monotonic() - started:.0f} s)")
    prune(cfg)


def prune(cfg: BuildConfig) -> None:
    entries = sorted(cfg.cache_dir.glob("stage-*"), key=lambda p: p.stat().st_mtime)
    for old in entries[: max(0, len(entries) - int(cfg["CACHE_KEEP"]))]:
        log.info(f"removing old stage cache {old.name}")
        remove_tree(old)
