"""Find stages and steps in stage-scripts/ (or STAGE_LIST) and the package lists they declare.

Layout, as in pi-gen: stage-scripts/NN-stage/NN-step/ holding files of these kinds,
handled in this order for each two-digit prefix:
  NN-packages       Debian packages, one or more per line, `#` comments. All lists of all
                    stages are installed by the bootstrap in one mmdebstrap run (one dpkg
                    pass under emulation instead of one per step); the list decides the
                    bootstrap cache key.
  NN-run.sh         runs on the host (ROOTFS_DIR, WORK_DIR, REPO_DIR, STEP_DIR, build.conf vars)
  NN-run-chroot.sh  runs inside the rootfs with /proc, /sys, /dev mounted
  NN-ansible        playbooks (repo-relative paths, ${VAR} from build.conf) applied to the
                    rootfs over a chroot connection
  files/            data for the step's scripts
A `SKIP` file in a stage or step skips it (logged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from image.config import REPO_DIR, BuildConfig
from image.errors import ConfigError

STAGE_ROOT = REPO_DIR / "stage-scripts"
_ORDERED = re.compile(r"^\d\d-")
KINDS = ("packages", "run.sh", "run-chroot.sh", "ansible")


@dataclass(frozen=True)
class Action:
    """One file of one kind inside a step."""

    kind: str
    path: Path


def stage_dirs(config: BuildConfig) -> list[Path]:
    """Stages in build order: STAGE_LIST if set, else every NN-* folder of stage-scripts/."""
    if config["STAGE_LIST"].strip():
        stages = []
        for entry in config["STAGE_LIST"].split():
            path = Path(entry) if Path(entry).is_absolute() else REPO_DIR / entry
            if not path.is_dir():
                raise ConfigError(f"STAGE_LIST entry {entry}: no such folder")
            stages.append(path)
        return stages
    return sorted(p for p in STAGE_ROOT.iterdir() if p.is_dir() and _ORDERED.match(p.name))


def step_dirs(stage: Path) -> list[Path]:
    return sorted(p for p in stage.iterdir() if p.is_dir() and _ORDERED.match(p.name))


def actions(step: Path) -> list[Action]:
    """The step's files in execution order: by prefix, then by kind."""
    found = []
    for prefix in sorted({p.name[:2] for p in step.iterdir() if _ORDERED.match(p.name)}):
        for kind in KINDS:
            path = step / f"{prefix}-{kind}"
            if path.is_file():
                found.append(Action(kind, path))
    return found


def unknown_files(step: Path) -> list[Path]:
    """Files that look like actions but match no kind (logged so they never fail silently)."""
    known = {a.path for a in actions(step)}
    return sorted(
        p for p in step.iterdir()
        if p.is_file() and _ORDERED.match(p.name) and p not in known
    )


def read_packages(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        names.extend(line.split("#", 1)[0].split())
    return names


def all_packages(config: BuildConfig) -> list[str]:
    """Every package named by an NN-packages file of a stage and step that is not skipped."""
    names: set[str] = set()
    for stage in stage_dirs(config):
        if (stage / "SKIP").exists():
            continue
        for step in step_dirs(stage):
            if (step / "SKIP").exists():
                continue
            for action in actions(step):
                if action.kind == "packages":
                    names.update(read_packages(action.path))
    return sorted(names)
