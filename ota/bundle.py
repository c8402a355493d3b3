"""Build, inspect and check RAUC bundles (verity format, CMS-signed).

`make` wraps `rauc bundle` around one ext4 root filesystem image; `rootfs_from_sd_image`
cuts slot A out of a built SD image and shrinks it to its content, so a bundle carries
only what the slot needs. `check` runs `rauc info` against a keyring (RAUC verifies the
CMS signature and the signer chain) and then applies our own rules: compatible string,
build-counter floor.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ota import version as versions
from ota.errors import BundleError
from ota.tools import run

ROOTFS_NAME = "rootfs.ext4"
ROOT_PARTITION = 2  # slot A of the SD image (image/disk.py)
# The bundle's squashfs: zstd (the device's Debian kernel has CONFIG_SQUASHFS_ZSTD=y) at
# level 6 is ~15x faster to build than RAUC's default gzip and a few % smaller.
MKSQUASHFS_ARGS = "-comp zstd -Xcompression-level 6"


@dataclass(frozen=True)
class BundleInfo:
    compatible: str
    version: str
    counter: int
    build: str
    description: str
    size: int


def manifest_text(compatible: str, version: str, build: str, description: str) -> str:
    for name, value in (("compatible", compatible), ("version", version), ("build", build),
                        ("description", description)):
        if not value or "\n" in value or len(value) > 200:
            raise BundleError(f"bundle {name} must be one short line, got {value[:60]!r}")
    return (
        "[update]\n"
        f"compatible={compatible}\n"
        f"version={version}\n"
        f"build={build}\n"
        f"description={description}\n"
        "\n"
        "[bundle]\n"
        "format=verity\n"
        "\n"
        "[image.rootfs]\n"
        f"filename={ROOTFS_NAME}\n"
    )


def make(rootfs_image: Path, out: Path, *, compatible: str, counter: int, display_version: str,
         cert: Path, key: Path, keyring: Path | None = None,
         mksquashfs_args: str = MKSQUASHFS_ARGS) -> BundleInfo:
    """Sign `rootfs_image` into the verity bundle `out` (replaced if it exists)."""
    if not rootfs_image.is_file():
        raise BundleError(f"root filesystem image {rootfs_image} not found")
    version = versions.rauc_version(counter, display_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ota-bundle-", dir=out.parent) as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        (content / "manifest.raucm").write_text(manifest_text(
            compatible, version, str(counter), f"{compatible} {display_version}"))
        target = content / ROOTFS_NAME
        try:
            os.link(rootfs_image, target)
        except OSError:
            run(["cp", "--sparse=always", rootfs_image, target], error=BundleError)
        partial = Path(tmp) / "bundle.raucb"
        argv = ["rauc", "bundle", f"--cert={cert}", f"--key={key}"]
        if mksquashfs_args:
            argv.append(f"--mksquashfs-args={mksquashfs_args}")
        if keyring is not None:
            argv.append(f"--keyring={keyring}")
        run([*argv, content, partial], error=BundleError)
        os.replace(partial, out)
    return BundleInfo(compatible, version, counter, str(counter),
                      f"{compatible} {display_version}", out.stat().st_size)


def _partition(sd_image: Path, number: int) -> tuple[int, int]:
    """(start, size) in bytes of partition `number` of an MBR image, from sfdisk."""
    table = json.loads(run(["sfdisk", "--json", sd_image], error=BundleError))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table["partitions"]:
        if part["node"].endswith(str(number)) and re.search(rf"\D{number}$", part["node"]):
            return int(part["start"]) * sector, int(part["size"]) * sector
    raise BundleError(f"{sd_image} has no partition {number}")


def rootfs_from_sd_image(sd_image: Path, out: Path, *, shrink: bool = True) -> Path:
    """Copy slot A's ext4 out of an SD image; shrink it to its content (resize2fs -M)."""
    start, size = _partition(sd_image, ROOT_PARTITION)
    mib = 1024 * 1024
    if start % mib or size % mib:
        raise BundleError("root partition is not MiB aligned")
    copy_range_sparse(sd_image, start, size, out)
    if shrink:
        shrink_ext4(out)
    return out


def copy_range_sparse(source: Path, start: int, length: int, out: Path) -> None:
    """Copy bytes [start, start + length) of `source` into a new sparse file `out`, only the
    data extents (SEEK_DATA/SEEK_HOLE): the holes of a fresh SD image are most of a slot."""
    end = start + length
    with source.open("rb") as src, out.open("wb") as dst:
        os.truncate(dst.fileno(), length)
        position = start
        while position < end:
            try:
                data = os.lseek(src.fileno(), position, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            if data >= end:
                break
            hole = min(os.lseek(src.fileno(), data, os.SEEK_HOLE), end)
            copied = data
            while copied < hole:
                done = os.copy_file_range(src.fileno(), dst.fileno(), hole - copied,
                                          copied, copied - start)
                if done == 0:
                    raise BundleError(f"{source}: unexpected end of file at {copied}")
                copied += done
            position = hole


def shrink_ext4(image: Path) -> None:
    """Shrink an ext4 image file to its minimum size and cut the file to match."""
    run(["e2fsck", "-fy", image], error=BundleError)
    run(["resize2fs", "-M", image], error=BundleError)
    header = run(["dumpe2fs", "-h", image], error=BundleError)
    fields = dict(re.findall(r"^(Block count|Block size):\s+(\d+)$", header, re.MULTILINE))
    os.truncate(image, int(fields["Block count"]) * int(fields["Block size"]))


def _host_conf(tmp: Path, keyring: Path) -> Path:
    """A stand-in system.conf that keeps the host's own RAUC configuration out of checks."""
    conf = tmp / "system.conf"
    conf.write_text("[system]\ncompatible=ota-host-check\nbootloader=noop\n"
                    f"[keyring]\npath={keyring}\nuse-bundle-signing-time=true\n")
    return conf


def signed_manifest(bundle: Path, keyring: Path) -> configparser.ConfigParser:
    """The manifest inside the bundle's CMS signature (RAUC checks the signature first)."""
    with tempfile.TemporaryDirectory(prefix="ota-sig-") as tmp:
        sig = Path(tmp) / "signature.der"
        run(["rauc", f"--conf={_host_conf(Path(tmp), keyring)}", f"--keyring={keyring}",
             "extract-signature", bundle, sig], error=BundleError, timeout=600)
        text = run(["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-in", sig],
                   error=BundleError)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def verify_payload(bundle: Path, keyring: Path) -> None:
    """Check every block of the payload against the signed dm-verity root hash, in user
    space (veritysetup). The device's kernel does the same while RAUC installs."""
    manifest = signed_manifest(bundle, keyring)
    section = manifest["bundle"] if manifest.has_section("bundle") else {}
    if section.get("format") != "verity":
        raise BundleError("bundle is not in verity format: refused")
    root_hash, salt = section.get("verity-hash", ""), section.get("verity-salt", "")
    hash_size = int(section.get("verity-size", "0"))
    total = bundle.stat().st_size
    with bundle.open("rb") as handle:
        handle.seek(total - 8)
        (sig_size,) = struct.unpack(">Q", handle.read(8))
    data_size = total - 8 - sig_size - hash_size
    if data_size <= 0 or data_size % 4096 or not re.fullmatch(r"[0-9a-f]{64}", root_hash):
        raise BundleError("bundle layout does not match its signed manifest")
    run(["veritysetup", "verify", "--no-superblock", "--hash=sha256",
         "--data-block-size=4096", "--hash-block-size=4096", f"--data-blocks={data_size // 4096}",
         f"--hash-offset={data_size}", f"--salt={salt}", bundle, bundle, root_hash],
        error=BundleError, timeout=3600)


def info(bundle: Path, keyring: Path) -> BundleInfo:
    """`rauc info` with the given keyring: raises BundleError unless the signature is valid."""
    if not bundle.is_file():
        raise BundleError(f"bundle {bundle} not found")
    if not keyring.is_file():
        raise BundleError(f"keyring {keyring} not found: refusing to check without one")
    with tempfile.TemporaryDirectory(prefix="ota-info-") as tmp:
        out = run(["rauc", f"--conf={_host_conf(Path(tmp), keyring)}", f"--keyring={keyring}",
                   f"--mount={tmp}", "info", "--output-format=json", bundle],
                  error=BundleError, timeout=600)
    try:
        data = json.loads(out)
        version = str(data["version"])
        return BundleInfo(str(data["compatible"]), version, versions.counter_of(version),
                          str(data.get("build") or ""), str(data.get("description") or ""),
                          bundle.stat().st_size)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"rauc info gave an unusable answer: {exc}") from exc


def check(bundle: Path, keyring: Path, *, compatible: str | None = None,
          floor: int | None = None, payload: bool = True) -> BundleInfo:
    """Signature (RAUC), payload blocks (dm-verity tree), compatible and floor (ours)."""
    found = info(bundle, keyring)
    if payload:
        verify_payload(bundle, keyring)
    if compatible is not None and found.compatible != compatible:
        raise BundleError(f"bundle is for {found.compatible!r}, this system is {compatible!r}")
    if floor is not None and found.counter < floor:
        raise BundleError(f"bundle build {found.counter} is older than the floor {floor}: "
                          "downgrades are refused")
    return found
