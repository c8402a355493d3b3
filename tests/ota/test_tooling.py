"""The `ota` host command: keygen, bundle, verify, against the real openssl and rauc."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ota import bundle, keys
from ota import version as versions
from ota.errors import BundleError
from tests.ota.conftest import COMPATIBLE

REPO = Path(__file__).resolve().parents[2]


def ota(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ota", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def test_keygen_makes_a_ca_and_a_signing_cert_with_private_keys_0600(tmp_path: Path) -> None:
    result = ota("keygen", tmp_path / "k")
    assert result.returncode == 0, result.stderr
    made = keys.KeyDir(tmp_path / "k")
    assert made.complete()
    for private in (made.key, made.ca_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    text = subprocess.run(["openssl", "x509", "-in", made.ca_cert, "-noout", "-subject"],
                          capture_output=True, text=True, check=True).stdout
    assert "development CA" in text
    chain = subprocess.run(["openssl", "verify", "-CAfile", made.ca_cert, made.cert],
                           capture_output=True, text=True, check=False)
    assert chain.returncode == 0, chain.stderr


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    assert ota("keygen", tmp_path / "k").returncode == 0
    again = ota("keygen", "--release", tmp_path / "k")
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_keyring_never_takes_a_private_key(dev_keys: keys.KeyDir, tmp_path: Path) -> None:
    with pytest.raises(keys.KeyGenError, match="private key"):
        keys.write_keyring([dev_keys.key], tmp_path / "keyring.pem")


def test_bundle_and_verify_round_trip(rootfs_image: Path, dev_keys: keys.KeyDir,
                                      tmp_path: Path) -> None:
    out = tmp_path / "u.raucb"
    made = ota("bundle", "--rootfs-image", rootfs_image, "-o", out, "--compatible", COMPATIBLE,
               "--version", "20261202-gabc123", "--counter", "202612021200",
               "--cert", dev_keys.cert, "--key", dev_keys.key, "--keyring", dev_keys.ca_cert)
    assert made.returncode == 0, made.stderr
    checked = ota("verify", out, "--keyring", dev_keys.ca_cert, "--compatible", COMPATIBLE,
                  "--floor", "202612021200")
    assert checked.returncode == 0, checked.stderr
    info = json.loads(checked.stdout)
    assert info["version"] == "202612021200.0.0+20261202-gabc123"
    assert info["counter"] == 202612021200 and info["build"] == "202612021200"
    # the manifest inside is RAUC's: verity format, one rootfs image
    manifest = subprocess.run(["unsquashfs", "-cat", out, "manifest.raucm"],
                              capture_output=True, text=True, check=True).stdout
    assert "format=verity" in manifest and f"compatible={COMPATIBLE}" in manifest


def test_verify_refuses_a_bundle_signed_by_another_ca(make_bundle, other_keys: keys.KeyDir,
                                                      dev_keys: keys.KeyDir) -> None:
    foreign = make_bundle(signer=other_keys)
    result = ota("verify", foreign, "--keyring", dev_keys.ca_cert)
    assert result.returncode == 1 and "rauc failed" in result.stderr


def test_verify_refuses_an_unsigned_bundle(tmp_path: Path, rootfs_image: Path,
                                           dev_keys: keys.KeyDir) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "manifest.raucm").write_text(bundle.manifest_text(COMPATIBLE, "999.0.0", "999",
                                                                  "unsigned"))
    shutil.copy(rootfs_image, content / bundle.ROOTFS_NAME)
    unsigned = tmp_path / "unsigned.raucb"
    subprocess.run(["mksquashfs", content, unsigned, "-quiet", "-all-root"], check=True)
    with pytest.raises(BundleError):
        bundle.check(unsigned, dev_keys.ca_cert)


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_verify_refuses_a_tampered_bundle(make_bundle, dev_keys: keys.KeyDir, tmp_path: Path,
                                          where: str) -> None:
    tampered = tmp_path / "tampered.raucb"
    shutil.copy(make_bundle(), tampered)
    data = bytearray(tampered.read_bytes())
    # the CMS signature (with the manifest) is at the end, the squashfs payload at the start
    index = len(data) - 600 if where == "signature" else 2048
    data[index] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        bundle.check(tampered, dev_keys.ca_cert)


def test_verify_refuses_the_wrong_compatible(make_bundle, dev_keys: keys.KeyDir) -> None:
    other = make_bundle(compatible="emonpi2-rpi-arm64")
    with pytest.raises(BundleError, match="is for 'emonpi2-rpi-arm64'"):
        bundle.check(other, dev_keys.ca_cert, compatible=COMPATIBLE)


def test_verify_refuses_a_build_below_the_floor(make_bundle, dev_keys: keys.KeyDir) -> None:
    with pytest.raises(BundleError, match="older than the floor 101"):
        bundle.check(make_bundle(counter=100), dev_keys.ca_cert, floor=101)
    assert bundle.check(make_bundle(counter=100), dev_keys.ca_cert, floor=100).counter == 100


def test_verify_needs_a_keyring(make_bundle, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"keyring .* not found"):
        bundle.check(make_bundle(), tmp_path / "missing.pem")


def test_versions_order_by_build_counter() -> None:
    v = versions.rauc_version(202612021200, "20261202-g1a2b3c4")
    assert v == "202612021200.0.0+20261202-g1a2b3c4"
    assert versions.counter_of(v) == 202612021200
    assert versions.display_of(v) == "20261202-g1a2b3c4"
    assert versions.rauc_version(7, "a b/c") == "7.0.0+a-b-c"
    for bad in ["", "1.0", "x.0.0", "01.0.0", "1.0.0+", "1.0.0 ; rm", "9" * 40 + ".0.0"]:
        with pytest.raises(versions.VersionError):
            versions.counter_of(bad)


def test_rootfs_from_sd_image_cuts_partition_two_and_shrinks_it(tmp_path: Path,
                                                                 rootfs_image: Path) -> None:
    sd = tmp_path / "sd.img"
    subprocess.run(["truncate", "-s", "40M", sd], check=True)
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", sd],
                   input="label: dos\nstart=2048, size=8192, type=c\n"
                         "start=10240, size=32768, type=83\n", text=True, check=True,
                   capture_output=True)
    slot = tmp_path / "slot.ext4"
    subprocess.run(["cp", rootfs_image, slot], check=True)
    subprocess.run(["truncate", "-s", "16M", slot], check=True)
    subprocess.run(["resize2fs", slot], check=True, capture_output=True)
    subprocess.run(["dd", f"if={slot}", f"of={sd}", "bs=1M", "seek=5", "conv=notrunc",
                    "status=none"], check=True)
    out = bundle.rootfs_from_sd_image(sd, tmp_path / "rootfs.ext4")
    assert out.stat().st_size < 16 * 2**20
    listing = subprocess.run(["debugfs", "-R", "cat /etc/cydynni-image-id", out],
                             capture_output=True, text=True, check=True).stdout
    assert "OTA_BUILD_COUNTER=1" in listing
