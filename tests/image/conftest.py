"""Fixtures for the image tests: the last build in deploy/ (or $CYDYNNI_DEPLOY_DIR) and its
partitions extracted as files. Tests skip, saying why, only when no image was built."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from image.config import REPO_DIR
from image.qemu import Built, last_build

SECTOR = 512


def deploy_dir() -> Path:
    return Path(os.environ.get("CYDYNNI_DEPLOY_DIR", REPO_DIR / "deploy"))


@pytest.fixture(scope="session")
def built() -> Built:
    found = last_build(deploy_dir())
    if found is None:
        pytest.skip(f"no image built in {deploy_dir()} (deploy/latest.json): run ./build.sh")
    return found


@pytest.fixture(scope="session")
def partition_table(built: Built) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(built.image)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]


@pytest.fixture(scope="session")
def partitions(built: Built, partition_table: dict, tmp_path_factory) -> dict[int, Path]:
    """Each partition of the image as its own (sparse) file: p1 FAT, p2/p3 slots, p4 data."""
    out = tmp_path_factory.mktemp("partitions")
    files = {}
    for number, part in enumerate(partition_table["partitions"], start=1):
        path = out / f"p{number}.img"
        subprocess.run(
            ["dd", f"if={built.image}", f"of={path}", "bs=4M", "iflag=skip_bytes,count_bytes",
             f"skip={part['start'] * SECTOR}", f"count={part['size'] * SECTOR}",
             "conv=sparse", "status=none"], check=True)
        files[number] = path
    return files


@pytest.fixture(scope="session")
def root_a(partitions: dict[int, Path], tmp_path_factory) -> Path:
    """Slot A's filesystem unpacked (debugfs rdump: no mount, no loop device)."""
    out = tmp_path_factory.mktemp("root-a")
    subprocess.run(["debugfs", "-R", f"rdump / {out}", str(partitions[2])], check=True,
                   capture_output=True)
    return out
