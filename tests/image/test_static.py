"""Static checks of the built image, without booting it: partition table and labels, how
filesystems are found, per-device identity left out, no secrets, manifest = contents."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from image.hooks import pycompile
from image.hooks.pycompile import inside
from image.qemu import Built

LABELS = {1: ("vfat", "CYDYNNIBOOT"), 2: ("ext4", "cydynni-root-a"),
          3: ("ext4", "cydynni-root-b"), 4: ("ext4", "cydynni-data")}
SECRET_PATTERNS = [re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
                   re.compile(rb"(?m)^\s*(?:db|mqtt|mqtt_admin)_password\s*=\s*\"[^\"]+\"")]


def blkid(path: Path) -> dict[str, str]:
    out = subprocess.run(["blkid", "-p", "-o", "export", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def mdir(fat: Path) -> set[str]:
    out = subprocess.run(["mdir", "-b", "-i", str(fat), "::/"], check=True, capture_output=True,
                         text=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    return {line.strip().removeprefix("::/") for line in out.splitlines() if line.strip()}


def mtype(fat: Path, name: str) -> bytes:
    return subprocess.run(["mtype", "-i", str(fat), f"::/{name}"], check=True,
                          capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout


def test_partition_table_is_mbr_with_fixed_disk_id(built: Built, partition_table: dict) -> None:
    assert partition_table["label"] == "dos"
    assert partition_table["id"] == built.manifest["partition_table"]["disk_id"]
    types = [p["type"] for p in partition_table["partitions"]]
    assert types == ["c", "83", "83", "83"]
    assert partition_table["partitions"][0].get("bootable") is True


def test_root_slots_have_the_same_size_and_data_is_last(partition_table: dict) -> None:
    parts = partition_table["partitions"]
    assert parts[1]["size"] == parts[2]["size"]
    end = parts[3]["start"] + parts[3]["size"]
    assert all(p["start"] + p["size"] <= parts[3]["start"] for p in parts[:3])
    assert end * 512 == Path(partition_table["device"]).stat().st_size


@pytest.mark.parametrize("number", sorted(LABELS))
def test_filesystem_type_and_label(partitions: dict[int, Path], number: int) -> None:
    fs_type, label = LABELS[number]
    info = blkid(partitions[number])
    assert (info.get("TYPE"), info.get("LABEL")) == (fs_type, label)


def test_fsck_clean(partitions: dict[int, Path]) -> None:
    subprocess.run(["fsck.vfat", "-n", str(partitions[1])], check=True, capture_output=True)
    for number in (2, 3, 4):
        subprocess.run(["e2fsck", "-fn", str(partitions[number])], check=True,
                       capture_output=True)


def test_boot_fat_holds_firmware_uboot_and_ab_state(partitions: dict[int, Path],
                                                     tmp_path: Path) -> None:
    names = mdir(partitions[1])
    for needed in ("bootcode.bin", "start.elf", "start4.elf", "fixup.dat", "fixup4.dat",
                   "u-boot.bin", "config.txt", "boot.scr", "rauc.env", "cydynni.txt",
                   "bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb"):
        assert needed in names
    config = mtype(partitions[1], "config.txt").decode()
    assert "kernel=u-boot.bin" in config and "arm_64bit=1" in config
    env_file = tmp_path / "rauc.env"
    env_file.write_bytes(mtype(partitions[1], "rauc.env"))
    cfg = tmp_path / "fw_env.config"
    cfg.write_text(f"{env_file} 0x0000 0x4000\n")
    out = subprocess.run(["fw_printenv", "-c", str(cfg)], check=True, capture_output=True,
                         text=True).stdout
    assert dict(line.split("=", 1) for line in out.splitlines()) == {
        "BOOT_ORDER": "A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_SEQ": "0"}
    # the second copy of the state (ota/bootenv.py), identical at first
    assert mtype(partitions[1], "rauc.env.b") == env_file.read_bytes()


def test_uboot_boots_without_a_countdown(partitions: dict[int, Path], tmp_path: Path) -> None:
    """The firmware DTBs (U-Boot's control DTB on a Pi) carry /config/bootdelay = 0."""
    dtbs = sorted(name for name in mdir(partitions[1]) if name.endswith(".dtb"))
    assert len(dtbs) >= 5, dtbs
    delays = {}
    for name in dtbs:
        (tmp_path / name).write_bytes(mtype(partitions[1], name))
        delays[name] = subprocess.run(["fdtget", str(tmp_path / name), "/config", "bootdelay"],
                                      capture_output=True, text=True).stdout.strip()
    assert delays == dict.fromkeys(dtbs, "0")


def test_slot_has_kernel_initrd_and_dtbs_where_boot_scr_loads_them(root_a: Path) -> None:
    for name in ("boot/vmlinuz", "boot/initrd.img"):
        assert (root_a / name).is_symlink() and (root_a / name).resolve().is_file()
    dtbs = root_a / "boot" / os.readlink(root_a / "boot/dtbs")
    assert (dtbs / "broadcom/bcm2837-rpi-3-b.dtb").is_file()
    assert not list((root_a / "boot/firmware").iterdir())


def test_filesystems_are_found_by_label_or_partuuid(root_a: Path) -> None:
    fstab = (root_a / "etc/fstab").read_text() if (root_a / "etc/fstab").exists() else ""
    units = root_a / "usr/lib/systemd/system"
    mounts = fstab + "".join(p.read_text() for p in (units / "boot-firmware.mount",
                                                      units / "data.mount") if p.exists())
    assert "CYDYNNIBOOT" in mounts and "cydynni-data" in mounts
    assert not re.search(r"/dev/(mmcblk|sd[a-z]|vd[a-z])", mounts)
    system_conf = (root_a / "etc/rauc/system.conf").read_text()
    assert "/dev/disk/by-partuuid/" in system_conf
    assert not re.search(r"(?m)^\s*/\s", fstab.replace("\t", " ")), "no / line: slot-specific"


def test_rauc_identity_matches_disk_id(root_a: Path, built: Built) -> None:
    system_conf = (root_a / "etc/rauc/system.conf").read_text()
    disk_id = built.manifest["partition_table"]["disk_id"].removeprefix("0x").lower()
    assert f"device=/dev/disk/by-partuuid/{disk_id}-02" in system_conf
    assert f"device=/dev/disk/by-partuuid/{disk_id}-03" in system_conf
    assert f"compatible={built.manifest['rauc_compatible']}" in system_conf
    assert (root_a / "etc/fw_env.config").read_text().count("/boot/firmware/rauc.env") == 1


def test_no_per_device_identity_in_image(root_a: Path) -> None:
    assert not list((root_a / "etc/ssh").glob("ssh_host_*"))
    machine_id = root_a / "etc/machine-id"
    assert machine_id.is_symlink() or machine_id.read_text().strip() in ("", "uninitialized")
    assert not (root_a / "var/lib/systemd/random-seed").exists()
    assert not (root_a / "var/lib/mysql/mysql").exists(), "MariaDB is initialised at first boot"


def test_no_secrets_in_image(root_a: Path, partitions: dict[int, Path]) -> None:
    found = []
    for path in root_a.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        if path.is_relative_to(root_a / "usr/share") or path.is_relative_to(root_a / "usr/lib"):
            continue  # packaged files (test keys in Python packages, docs)
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binaries carry PEM markers as format strings
        if any(p.search(data) for p in SECRET_PATTERNS):
            found.append(str(path.relative_to(root_a)))
    assert found == []
    assert not (root_a / "data/hub/hub.toml").exists()
    data_files = subprocess.run(["debugfs", "-R", "ls -p /", str(partitions[4])], check=True,
                                capture_output=True, text=True).stdout
    names = {f.split("/")[5] for f in data_files.splitlines() if f.count("/") >= 6}
    assert names <= {".", "..", "lost+found"}, "data partition ships empty"


def test_every_sysv_script_has_a_native_unit(root_a: Path) -> None:
    """roles/base masks systemd-sysv-generator (one generator less on every boot's serial
    path), so an /etc/init.d script without a native unit of the same name would silently
    never start."""
    masked = root_a / "etc/systemd/system-generators/systemd-sysv-generator"
    assert masked.is_symlink() and os.readlink(masked) == "/dev/null"
    unit_dirs = [root_a / "etc/systemd/system", root_a / "usr/lib/systemd/system"]
    scripts = sorted(p.name for p in (root_a / "etc/init.d").iterdir()
                     if p.is_file() and p.name not in ("README", "skeleton"))
    assert scripts, "expected the packages' init.d scripts (mariadb, ssh, …)"
    missing = [name for name in scripts
               if not any((d / f"{name}.service").exists() or (d / f"{name}.service").is_symlink()
                          for d in unit_dirs)]
    assert missing == []


def initramfs_udev_essence(text: str) -> list[str]:
    """A scripts/init-top/udev without the cydynni header and with the trigger's subsystem
    list taken out: what must stay as Debian wrote it."""
    lines = text.splitlines()
    if len(lines) > 1 and lines[1].startswith("# cydynni:"):
        end = lines.index("", 1)
        lines = lines[:1] + lines[end:]
    kept = []
    for line in lines:
        if line.startswith(("set -- --subsystem-match", "\t--subsystem-match",
                            'echo "cydynni:')):
            continue
        kept.append(line.replace(' "$@"', ""))
    return kept


def test_initramfs_udev_script_is_debians_but_for_the_coldplug(root_a: Path) -> None:
    """overlays/rootfs/etc/initramfs-tools/scripts/init-top/udev replaces the udev
    package's script in the initramfs; a Debian release that changes the rest of it must be
    looked at, not silently shadowed."""
    ours = (root_a / "etc/initramfs-tools/scripts/init-top/udev").read_text()
    debian = (root_a / "usr/share/initramfs-tools/scripts/init-top/udev").read_text()
    assert "--subsystem-match=block" in ours
    assert initramfs_udev_essence(ours) == initramfs_udev_essence(debian)


def test_every_debian_python_module_has_a_valid_pyc(root_a: Path) -> None:
    """The root is read-only: a module whose .pyc is missing or stale (another magic than the
    image's Python's, or header mtime/size not the source's: what the import system checks)
    is compiled again in memory at every start.  The build byte-compiles these once, after
    the packages are in, with a native Python of the same version (image/hooks)."""
    stdlib = [d for d in (root_a / "usr/lib").glob("python3.*") if (d / "os.py").is_file()]
    assert len(stdlib) == 1, stdlib
    version = stdlib[0].name.removeprefix("python")
    tag = "cpython-" + version.replace(".", "")
    magic = pycompile.target_magic(root_a, version)
    checked, bad = 0, []
    for base in (stdlib[0], root_a / "usr/lib/python3/dist-packages", root_a / "usr/share/python3"):
        for source in base.rglob("*.py"):
            real = inside(root_a, source)
            if not real.is_file():
                continue
            pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            header = pyc.read_bytes()[:16] if pyc.is_file() else b""
            st = real.stat()
            expect = (0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)
            if (len(header) < 16 or header[:4] != magic
                    or struct.unpack("<3I", header[4:16]) != expect):
                bad.append(str(source.relative_to(root_a)))
            checked += 1
    assert checked > 900
    assert bad == []


def test_ca_bundle_matches_the_certificate_links(root_a: Path) -> None:
    """update-ca-certificates runs once, late in the bootstrap: its output is complete."""
    certs = root_a / "etc/ssl/certs"
    links = [p for p in certs.glob("*.pem") if p.is_symlink()]
    assert len(links) > 100
    bundle = (certs / "ca-certificates.crt").read_text()
    assert bundle.count("-----BEGIN CERTIFICATE-----") == len(links)
    hashed = [p for p in certs.iterdir() if re.fullmatch(r"[0-9a-f]{8}\.[0-9]+", p.name)]
    assert len(hashed) >= len(links)
    assert all(inside(root_a, p).is_file() for p in links + hashed)


def test_manifest_matches_image(built: Built, root_a: Path, partition_table: dict) -> None:
    manifest = built.manifest
    image_id = dict(line.split("=", 1) for line in
                    (root_a / "etc/cydynni-image-id").read_text().splitlines())
    assert image_id["IMG_VERSION"] == manifest["version"]
    assert image_id["GIT_COMMIT"] == manifest["git_commit"]
    assert image_id["BUILD_TIME"] == manifest["build_time"]
    out = subprocess.run(
        ["dpkg-query", f"--admindir={root_a}/var/lib/dpkg", "-W", "-f=${db:Status-Abbrev}"
         "\t${binary:Package}\t${Version}\n"], check=True, capture_output=True, text=True).stdout
    installed = {name.split(":")[0]: version for status, name, version in
                 (line.split("\t") for line in out.splitlines()) if status.startswith("ii")}
    assert installed == manifest["packages"]
    for package in ("linux-image-arm64", "rauc", "mariadb-server", "mosquitto", "redis-server",
                    "python3-bottle"):
        assert package in installed
    assert "raspi-firmware" not in installed, "its kernel hooks would rewrite the boot FAT"
    table = manifest["partition_table"]["partitions"]
    assert [(p["start"], p["size"]) for p in table] == \
        [(p["start"], p["size"]) for p in partition_table["partitions"]]
    assert set(manifest["stage_seconds"]) >= {"total"}


def test_xz_checksum_and_size(built: Built) -> None:
    files = built.manifest["files"]
    xz = built.deploy / files["image_xz"]
    digest = hashlib.sha256(xz.read_bytes()).hexdigest()
    assert digest == built.manifest["image_xz_sha256"]
    sums = (built.deploy / files["sha256"]).read_text()
    assert f"{digest}  {xz.name}" in sums
    listed = subprocess.run(["xz", "--robot", "--list", str(xz)], check=True,
                            capture_output=True, text=True).stdout
    totals = next(line.split("\t") for line in listed.splitlines() if line.startswith("totals"))
    assert int(totals[4]) == built.image.stat().st_size
    bmap = (built.deploy / files["bmap"]).read_text()
    assert f"<ImageSize> {built.image.stat().st_size} </ImageSize>" in bmap


def test_manifest_is_json_with_required_fields(built: Built) -> None:
    manifest = json.loads(json.dumps(built.manifest))
    for key in ("version", "build_time", "git_commit", "packages", "partition_table",
                "stage_seconds"):
        assert manifest[key]
