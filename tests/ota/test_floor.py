"""The RAUC pre-install floor handler (ota/floor.py), run as RAUC runs it: a process with
RAUC's environment, exit 1 = RAUC aborts the install before writing a byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ota import bundle

REPO = Path(__file__).resolve().parents[2]


def run_handler(tmp_path: Path, env: dict[str, str], rootfs_counter: int = 100,
                floor: str | None = None) -> subprocess.CompletedProcess:
    image_id = tmp_path / "cydynni-image-id"
    image_id.write_text(f"IMG_NAME=cydynni-hub\nOTA_BUILD_COUNTER={rootfs_counter}\n")
    floor_file = tmp_path / "floor"
    if floor is not None:
        floor_file.write_text(floor)
    return subprocess.run([sys.executable, "-m", "ota.floor"], cwd=REPO, capture_output=True,
                          text=True, check=False,
                          env={"PYTHONPATH": str(REPO), "OTA_IMAGE_ID": str(image_id),
                               "OTA_FLOOR_FILE": str(floor_file), **env})


def mounted_bundle(tmp_path: Path, version: str) -> dict[str, str]:
    """What RAUC 1.13 gives a system handler: the verified bundle's mount point."""
    mount = tmp_path / "bundle"
    mount.mkdir(exist_ok=True)
    (mount / "manifest.raucm").write_text(bundle.manifest_text(
        "cydynni-hub-rpi-arm64", version, version.split(".")[0], "test"))
    return {"RAUC_BUNDLE_MOUNT_POINT": str(mount)}


@pytest.mark.parametrize("version,allowed", [("101.0.0+new", True), ("100.0.0+same", True),
                                             ("99.0.0+old", False)])
def test_floor_from_the_running_rootfs(tmp_path: Path, version: str, allowed: bool) -> None:
    result = run_handler(tmp_path, mounted_bundle(tmp_path, version))
    assert (result.returncode == 0) == allowed, result.stderr
    if not allowed:
        assert "below the floor 100" in result.stderr


def test_floor_from_the_last_commit_on_data(tmp_path: Path) -> None:
    # the other slot's older rootfs says 100, but 150 was committed since
    result = run_handler(tmp_path, mounted_bundle(tmp_path, "120.0.0+x"), floor="150")
    assert result.returncode == 1 and "below the floor 150" in result.stderr


def test_rauc_mf_version_is_used_when_rauc_gives_it(tmp_path: Path) -> None:
    assert run_handler(tmp_path, {"RAUC_MF_VERSION": "99.0.0"}).returncode == 1
    assert run_handler(tmp_path, {"RAUC_MF_VERSION": "101.0.0"}).returncode == 0


@pytest.mark.parametrize("floor", ["", "junk", "9" * 40, "-5"])
def test_a_damaged_floor_file_falls_back_to_the_rootfs_floor(tmp_path: Path,
                                                             floor: str) -> None:
    assert run_handler(tmp_path, mounted_bundle(tmp_path, "99.0.0"), floor=floor).returncode == 1
    assert run_handler(tmp_path, mounted_bundle(tmp_path, "100.0.0"), floor=floor).returncode == 0


def test_no_version_at_all_is_refused(tmp_path: Path) -> None:
    result = run_handler(tmp_path, {})
    assert result.returncode == 1 and "not a bundle version" in result.stderr
