"""OTA fixtures: real keys (openssl), real bundles (rauc, mksquashfs), a real goosebit.

    def test_x(keys, make_bundle):
        path = make_bundle(counter=5)          # signed with the session's development keys
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ota import bundle, keys
from ota.fleet import Goosebit as Fleet
from tests.ota.goosebit import PASSWORD, USER, Goosebit

COMPATIBLE = "cydynni-hub-rpi-arm64"


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.KeyDir:
    return keys.generate(tmp_path_factory.mktemp("keys") / "dev", organisation="Test Hub",
                         development=True)


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.KeyDir:
    """A second, unrelated CA: bundles it signs must be refused by dev_keys' keyring."""
    return keys.generate(tmp_path_factory.mktemp("keys") / "other", organisation="Attacker",
                         development=False)


@pytest.fixture(scope="session")
def rootfs_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ext4 root filesystem with incompressible content (RAUC wants > 4 KiB)."""
    work = tmp_path_factory.mktemp("rootfs")
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/cydynni-image-id").write_text("IMG_NAME=cydynni-hub\nOTA_BUILD_COUNTER=1\n")
    (tree / "payload.bin").write_bytes(os.urandom(256 * 1024))
    image = work / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, image, "8M"], check=True)
    return image


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory: pytest.TempPathFactory, rootfs_image: Path,
                dev_keys: keys.KeyDir) -> Callable[..., Path]:
    out_dir = tmp_path_factory.mktemp("bundles")
    made: dict[tuple, Path] = {}

    def make(counter: int = 100, *, compatible: str = COMPATIBLE,
             signer: keys.KeyDir | None = None, display: str = "test") -> Path:
        signer = signer or dev_keys
        key = (counter, compatible, str(signer.path), display)
        if key not in made:
            out = out_dir / f"b{len(made)}-{counter}.raucb"
            bundle.make(rootfs_image, out, compatible=compatible, counter=counter,
                        display_version=display, cert=signer.cert, key=signer.key)
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def goosebit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Goosebit]:
    with Goosebit.start(tmp_path_factory.mktemp("goosebit")) as server:
        yield server


@pytest.fixture(scope="session")
def fleet(goosebit: Goosebit) -> Fleet:
    return Fleet(goosebit.url, USER, PASSWORD)


@pytest.fixture(scope="session")
def publish(fleet: Fleet) -> Callable[[Path], int]:
    published: dict[Path, int] = {}

    def upload(path: Path) -> int:
        if path not in published:
            published[path] = fleet.upload(path)
        return published[path]

    return upload
