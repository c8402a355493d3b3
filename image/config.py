"""Build configuration: build.conf defaults, an optional extra file, then environment overrides.

One source of truth: every variable and its default live in build.conf at the repo root;
this module only parses, validates and derives values (paths, version, mirror).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from image.errors import ConfigError
from image.xzimage import parse_options as parse_xz_options

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONF = REPO_DIR / "build.conf"
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse_conf(path: Path) -> dict[str, str]:
    """Parse NAME=value lines; comments and blank lines are ignored, quotes are stripped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected NAME=value, got {raw!r}")
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match.group(1)] = value
    return values


def host_debian_mirror() -> str:
    """First Debian mirror URL in the host's apt sources (deb822 or one-line format)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in candidates:
        if not source.is_file() or not source.name.endswith((".list", ".sources")):
            continue
        for line in source.read_text().splitlines():
            line = line.strip()
            url = None
            if line.startswith("URIs:"):
                url = line.split()[1]
            elif line.startswith("deb ") and not line.startswith("deb-src"):
                parts = [p for p in line.split() if not p.startswith("[")]
                url = parts[1] if len(parts) > 1 else None
            if url and url.rstrip("/").endswith("/debian"):
                return url
    raise ConfigError(
        "MIRROR is empty and no Debian mirror was found in /etc/apt/sources*: "
        "set MIRROR in build.conf"
    )


def git_commit() -> str:
    """Short commit of the repo, with -dirty if the work tree differs; 'nogit' outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


@dataclass(frozen=True)
class BuildConfig:
    """Validated build settings plus derived paths."""

    values: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def mib(self, name: str) -> int:
        return int(self.values[name])

    @property
    def work_dir(self) -> Path:
        return Path(self["WORK_DIR"])

    @property
    def cache_dir(self) -> Path:
        return Path(self["CACHE_DIR"])

    @property
    def rootfs(self) -> Path:
        return self.work_dir / "rootfs"

    @property
    def deploy_dir(self) -> Path:
        path = Path(self["DEPLOY_DIR"])
        return path if path.is_absolute() else REPO_DIR / path

    @property
    def basename(self) -> str:
        return f"{self['IMG_NAME']}-{self['IMG_VERSION']}-{self['TARGET']}"

    @property
    def compatible(self) -> str:
        """RAUC compatible string: bundles for another name or target are refused."""
        return f"{self['IMG_NAME']}-{self['TARGET']}"

    def environ(self) -> dict[str, str]:
        """Environment for stage scripts: the config plus the paths they work on."""
        env = dict(os.environ)
        env.update(self.values)
        env.update(
            REPO_DIR=str(REPO_DIR),
            ROOTFS_DIR=str(self.rootfs),
            WORK_DIR=str(self.work_dir),
            CACHE_DIR=str(self.cache_dir),
            DEPLOY_DIR=str(self.deploy_dir),
            IMG_BASENAME=self.basename,
            RAUC_COMPATIBLE=self.compatible,
            PYTHONPATH=str(REPO_DIR),
            DEBIAN_FRONTEND="noninteractive",
            LC_ALL="C.UTF-8",
        )
        return env


def load(extra: Path | None = None, environ: dict[str, str] | None = None) -> BuildConfig:
    """Defaults from build.conf, then `extra`, then same-named environment variables."""
    environ = dict(os.environ) if environ is None else environ
    values = parse_conf(DEFAULT_CONF)
    if extra is not None:
        unknown = set(parse_conf(extra)) - set(values)
        if unknown:
            raise ConfigError(f"{extra}: unknown variables {sorted(unknown)} (see build.conf)")
        values.update(parse_conf(extra))
    for name in values:
        if name in environ:
            values[name] = environ[name]
    if not values["MIRROR"]:
        values["MIRROR"] = host_debian_mirror()
    values["GIT_COMMIT"] = environ.get("GIT_COMMIT") or git_commit()
    if not values["IMG_VERSION"]:
        stamp = time.strftime("%Y%m%d", time.gmtime())
        values["IMG_VERSION"] = f"{stamp}-g{values['GIT_COMMIT']}"
    _validate(values)
    return BuildConfig(values)


def _validate(values: dict[str, str]) -> None:
    """Reject values that would fail late, saying what to change."""
    for name in ("BOOT_SIZE_MIB", "ROOT_SIZE_MIB", "DATA_SIZE_MIB", "CACHE_KEEP"):
        if not values[name].isdigit() or int(values[name]) <= 0:
            raise ConfigError(f"{name}={values[name]!r}: must be a positive whole number")
    if int(values["BOOT_SIZE_MIB"]) < 64:
        raise ConfigError("BOOT_SIZE_MIB must be at least 64 (FAT32 needs it)")
    if not re.fullmatch(r"0x[0-9a-fA-F]{8}", values["DISK_ID"]):
        raise ConfigError(f"DISK_ID={values['DISK_ID']!r}: expected 0x followed by 8 hex digits")
    for name in ("IMG_NAME", "IMG_VERSION", "TARGET"):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", values[name]):
            raise ConfigError(f"{name}={values[name]!r}: use letters, digits, '.', '_', '+', '-'")
    if not Path(values["KEYRING"]).is_file():
        raise ConfigError(
            f"KEYRING={values['KEYRING']}: file not found (install debian-archive-keyring)"
        )
    parse_xz_options(values["XZ_OPTS"])  # refuses what image/xzimage.py does not understand
    work = Path(values["WORK_DIR"]).resolve()
    if work == Path("/") or len(work.parts) < 3:
        raise ConfigError(f"WORK_DIR={work} is too close to / to be deleted safely")
