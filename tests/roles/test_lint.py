"""Static checks of roles/ and overlays/rootfs: yamllint and ansible-lint with the committed
settings, ruff on the Python first-boot scripts, shell syntax, and the preset file in step
with what the roles enable and with the units that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.roles.tools import apt_install

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "overlays/rootfs"
UNIT_DIR = OVERLAY / "usr/lib/systemd/system"
PRESET = OVERLAY / "usr/lib/systemd/system-preset/70-cydynni.preset"
# overlays/rootfs files that belong to the image build / OTA work, not to the roles.
NOT_OURS = {"cydynni-ota-commit", "cydynni-ota-commit.service"}


def tool(name: str) -> str:
    """The lint tool (Debian package of the same name), installed if missing."""
    apt_install(name)
    found = shutil.which(name)
    assert found, f"{name} installed but not on PATH"
    return found


def python_scripts() -> list[Path]:
    return sorted(p for p in (OVERLAY / "usr/libexec").iterdir()
                  if p.name not in NOT_OURS and p.read_text().startswith("#!/usr/bin/python3"))


def shell_scripts() -> list[Path]:
    scripts = [p for p in (OVERLAY / "usr/libexec").iterdir()
               if p.name not in NOT_OURS and p.read_text().startswith("#!/bin/sh")]
    scripts += list((OVERLAY / "etc/initramfs-tools").rglob("cydynni-*"))
    return sorted(scripts)


def test_yamllint_is_clean() -> None:
    result = subprocess.run([tool("yamllint"), "-s", "-c", "roles/.yamllint", "roles/"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_is_clean() -> None:
    result = subprocess.run([tool("ansible-lint"), "--nocolor", "-c", "roles/.ansible-lint",
                             "roles/site.yml"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.mark.parametrize("script", python_scripts(), ids=lambda p: p.name)
def test_python_script_is_ruff_clean(script: Path) -> None:
    ruff = shutil.which("ruff") or str(REPO / ".venv/bin/ruff")
    result = subprocess.run([ruff, "check", "--config", str(REPO / "pyproject.toml"),
                             "--stdin-filename", f"{script.name}.py", "-"],
                            input=script.read_text(), capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.name)
def test_shell_script_parses_and_follows_the_rules(script: Path) -> None:
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert f"# {script.name}" in text or f"{script.name}:" in text, "banner names the job"
    if "initramfs-tools" not in str(script):  # initramfs hooks must never fail the boot
        assert "\nset -e\n" in text


def preset_lines() -> list[tuple[str, str]]:
    return [tuple(line.split(None, 1)) for line in PRESET.read_text().splitlines()
            if line and not line.startswith("#")]


def test_every_cydynni_unit_is_in_the_preset_and_exists() -> None:
    listed = {unit for _, unit in preset_lines()}
    ours = {p.name for p in UNIT_DIR.iterdir() if p.is_file()
            and (p.name.startswith("cydynni-") or p.suffix == ".mount")}
    ours -= NOT_OURS
    assert ours - listed == set(), "units missing from 70-cydynni.preset"
    for unit in listed:
        if unit.startswith("cydynni-") or unit.endswith(".mount"):
            assert (UNIT_DIR / unit).is_file(), unit


def test_every_unit_the_preset_enables_is_enabled_by_a_role() -> None:
    """Unit names in roles/ cover every preset `enable` (timesyncd is on by Debian default)."""
    text = "\n".join(p.read_text() for p in (REPO / "roles").glob("*/*/*.yml"))
    enabled_by_roles = set()
    for unit in re.findall(r"[\w@.\\-]+\.(?:service|mount|target|timer)", text):
        enabled_by_roles.add(unit)
    preset_enabled = {unit for action, unit in preset_lines() if action == "enable"}
    missing = {u for u in preset_enabled - enabled_by_roles if u != "systemd-timesyncd.service"}
    assert missing == set(), f"preset enables units no role enables: {missing}"


@pytest.mark.parametrize("unit", sorted(p.name for p in UNIT_DIR.iterdir() if p.is_file()
                                        and p.name not in NOT_OURS))
def test_job_units_run_their_namesake_in_libexec(unit: str) -> None:
    text = (UNIT_DIR / unit).read_text()
    exec_line = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE)
    if unit.startswith("cydynni-hub-") and unit != "cydynni-hub-database.service":
        assert exec_line and exec_line.group(1) == "/usr/bin/hub"
    elif exec_line:
        assert exec_line.group(1) == f"/usr/libexec/{unit.removesuffix('.service')}"
        assert (OVERLAY / exec_line.group(1).lstrip("/")).is_file()
    assert "Description=" in text


@pytest.mark.parametrize("role", sorted(p.parent.parent.name for p in
                                        (REPO / "roles").glob("*/defaults/main.yml")))
def test_role_readme_documents_every_variable_with_the_role_prefix(role: str) -> None:
    defaults = (REPO / "roles" / role / "defaults/main.yml").read_text()
    readme = (REPO / "roles" / role / "README.md").read_text()
    names = re.findall(r"^(\w+):", defaults, re.MULTILINE)
    assert names, "defaults/main.yml documents no variable"
    for name in names:
        assert name.startswith(f"{role}_"), f"{name} lacks the role prefix"
        assert f"{name}:" in readme, f"{name} is not in roles/{role}/README.md"
    for heading in ("## Requirements", "## Role Variables", "## Dependencies",
                    "## Example Playbook", "## License", "## Author"):
        assert heading in readme
