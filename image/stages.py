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

Packages a role needs are not in NN-packages: each role owns them as `<role>_packages` in
its defaults/main.yml (Vagrant installs them from there). The bootstrap installs them too,
for every role the NN-ansible playbooks apply, so one list serves both ways in.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
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


def playbooks(ansible_file: Path, values: Mapping[str, str]) -> list[Path]:
    """The playbooks an NN-ansible file names (repo-relative, `${VAR}` from build.conf)."""
    found = []
    for line in ansible_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        path = REPO_DIR / string.Template(line).substitute(values)
        if not path.is_file():
            raise ConfigError(f"{ansible_file}: playbook {path} not found")
        found.append(path)
    return found


# A block list under a key: `key:` then lines `  - item` (comments allowed between).
_BLOCK_ITEM = re.compile(r"^\s+-\s+([^\s#]+)\s*(?:#.*)?$")


def _block_list(text: str, key: str, where: Path) -> list[str] | None:
    """Items of the top-level YAML block list `key:`; None if the key is absent.

    The subset of YAML the roles use for plain lists (site.yml's roles, <role>_packages);
    anything else under the key is refused rather than guessed at."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        head = re.match(rf"^(\s*){re.escape(key)}:\s*(.*?)\s*(?:#.*)?$", line)
        if not head or (key.endswith("_packages") and head.group(1)):
            continue
        if head.group(2) == "[]":
            return []
        if head.group(2):
            raise ConfigError(f"{where}:{number + 1}: {key} must be a block list (`- name` lines)")
        items = []
        for item in lines[number + 1:]:
            if not item.strip() or item.strip().startswith("#"):
                continue
            match = _BLOCK_ITEM.match(item)
            if not match or len(item) - len(item.lstrip()) <= len(head.group(1)):
                break
            items.append(match.group(1))
        if not items:
            raise ConfigError(f"{where}:{number + 1}: {key} must be a block list (`- name` lines)")
        return items
    return None


_IMPORT = re.compile(r"^\s*(?:-\s+)?(?:ansible\.builtin\.)?import_playbook:\s*([^\s#]+)")


def playbook_roles(playbook: Path) -> list[str]:
    """Roles a playbook applies: its `roles:` list of plain role names, then the roles of the
    playbooks it imports (`import_playbook:`, as roles/site.yml does), in order."""
    text = playbook.read_text()
    names = _block_list(text, "roles", playbook) or []
    for line in text.splitlines():
        match = _IMPORT.match(line)
        if match:
            imported = playbook.parent / match.group(1)
            if not imported.is_file():
                raise ConfigError(f"{playbook}: imported playbook {imported} not found")
            names.extend(playbook_roles(imported))
    return names


def role_dir(name: str, playbook: Path) -> Path:
    """Where Ansible looks for a role: roles/ beside the playbook, the playbook's folder,
    then the repo's roles/ (the build's roles_path)."""
    for base in (playbook.parent / "roles", playbook.parent, REPO_DIR / "roles"):
        if (base / name / "tasks").is_dir():
            return base / name
    raise ConfigError(f"{playbook}: role {name} not found")


def role_packages(role: Path) -> list[str]:
    """`<role>_packages` from the role's defaults/main.yml (empty if it declares none)."""
    defaults = role / "defaults/main.yml"
    if not defaults.is_file():
        return []
    return _block_list(defaults.read_text(), f"{role.name}_packages", defaults) or []


def all_packages(config: BuildConfig) -> list[str]:
    """Every package the bootstrap installs: the NN-packages files and the `<role>_packages`
    of every role the NN-ansible playbooks apply, in stages and steps that are not skipped."""
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
                elif action.kind == "ansible":
                    for playbook in playbooks(action.path, config.values):
                        for role in playbook_roles(playbook):
                            names.update(role_packages(role_dir(role, playbook)))
    return sorted(names)
