"""roles/site.yml applied for real, then booted twice: the units come up and stay correct.

A native amd64 trixie rootfs with the image's package set (tests/roles/vm.py), the
overlay and every role applied over a chroot connection with cydynni_build=true, an MBR
disk in the image's layout with a headless setup file on the FAT, booted twice under TCG
with restricted user networking. The guest reports on its serial console
(guest/rootfs/usr/local/libexec/cydynni-test-report) after using every service.
Needs root (mmdebstrap, chroot, mount); installs its host tools with apt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.roles import vm

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mmdebstrap, chroot, mount)"),
]

SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICDX6ubsVw4QGjQaaWG1YF1x9/nhpuBWW4qqcbEAR+yf"
           " roles-test@example")
PSK = "correct horse battery staple"
# CRLF and a BOM, as Windows Notepad saves it; one bad value that must be skipped.
SETUP = ("\ufeff# written on Windows\r\n"
         "wifi_ssid = Home Net\r\n"
         f"wifi_psk = {PSK}\r\n"
         "wifi_country = GB\r\n"
         "hostname = hub-test\r\n"
         f"ssh_authorized_key = {SSH_KEY}\r\n"
         "timezone = Europe/London\r\n"
         "server_url = javascript:alert(1)\r\n")


def report_from(console: str) -> dict:
    for line in console.splitlines():
        if "CYDYNNI-REPORT " in line:
            return json.loads(line.split("CYDYNNI-REPORT ", 1)[1])
    raise AssertionError("no CYDYNNI-REPORT on the console:\n" + console[-4000:])


@pytest.fixture(scope="module")
def booted() -> dict:
    """Build and boot twice. A fresh directory per run (test runs may overlap on one host);
    CYDYNNI_ROLES_VM_DIR keeps everything in a fixed place for a look afterwards."""
    vm.ensure_host_tools()
    keep = os.environ.get("CYDYNNI_ROLES_VM_DIR")
    if keep:
        work = Path(keep)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="cydynni-roles-vm-", dir="/var/tmp"))
    try:
        disk = vm.build(work, SETUP, work / "build.log")
        root_before = disk.root_digest()
        first = report_from(vm.boot(disk, work / "console-1.log"))
        setup_after = disk.boot_file("cydynni.txt")
        second = report_from(vm.boot(disk, work / "console-2.log"))
        root_unchanged = disk.root_digest() == root_before
    except Exception:
        print(f"[ERROR] build log and consoles kept in {work}", file=sys.stderr)
        shutil.rmtree(work / "rootfs", ignore_errors=True)
        raise
    if keep:
        shutil.rmtree(work / "rootfs", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return {"first": first, "second": second, "setup_after": setup_after,
            "root_unchanged": root_unchanged}


@pytest.mark.parametrize("boot", ["first", "second"])
def test_boot_reaches_running_with_no_failed_units(booted: dict, boot: str) -> None:
    report = booted[boot]
    assert report["state"] == "running"
    assert report["failed"] == []
    assert report["failed_after_checks"] == []
    assert report["ordering_cycles"] == 0
    inactive = {unit: state for unit, state in report["units"].items() if state != "active"}
    # The MariaDB system tables exist after the first boot: its condition skips it.
    assert inactive == ({} if boot == "first" else {"cydynni-mariadb-init.service": "inactive"})


@pytest.mark.parametrize("boot", ["first", "second"])
def test_services_work_with_generated_credentials(booted: dict, boot: str) -> None:
    report = booted[boot]
    assert report["mqtt"] == {"hub_roundtrip": "42.5", "anonymous": "Not authorized",
                              "wrong_password": "Not authorized", "admin": "Success"}
    assert report["mariadb"]["hub_tables"] > 0  # hub web/worker migrated at start
    assert report["redis"] is True
    assert report["health"]["status"] == 200
    assert report["health"]["body"]["ok"] is True


def test_root_is_read_only_and_never_written(booted: dict) -> None:
    assert booted["first"]["root_options"].split(",")[0] == "ro"
    assert booted["root_unchanged"], "root A changed across two boots"
    for boot in ("first", "second"):
        # Nothing tries to write to the root. The one expected line: systemd touches the
        # mount point of a file bind mount (/etc/hostname) and ignores the EROFS.
        attempts = [line for line in booted[boot]["read_only_errors"]
                    if "Failed to create mount point '/etc/hostname', ignoring" not in line]
        assert attempts == []


def test_data_partition_grew_at_first_boot(booted: dict) -> None:
    assert booted["first"]["data_fs_mib"] > vm.DATA_MIB + vm.SLACK_MIB // 2


def test_secrets_are_per_device_private_and_stable(booted: dict) -> None:
    first, second = booted["first"], booted["second"]
    toml = first["hub_toml"]
    assert (toml["mode"], toml["uid"], toml["group"]) == ("0o640", 0, "cydynni")
    assert toml["empty_secrets"] == []
    assert first["etc_ssh_host_keys"] == []  # none baked into the image
    assert len(first["data_ssh_host_keys"]) == 6
    assert first["secrets_in_journal"] == 0
    assert second["hub_toml"]["sha256"] == toml["sha256"]  # nothing regenerated


def test_machine_id_and_journal_persist_across_boots(booted: dict) -> None:
    first, second = booted["first"], booted["second"]
    assert first["machine_id"] == first["machine_id_stored"]
    assert second["machine_id"] == first["machine_id"]  # PID 1 got it from the initramfs
    assert second["journal_dirs"] == [first["machine_id"]]
    assert second["boots"] == 2


def test_headless_setup_applied_and_key_removed(booted: dict) -> None:
    first = booted["first"]
    assert first["hostname"] == "hub-test"
    assert first["wifi_ssid"] == "Home Net"
    assert first["localtime"] == "/usr/share/zoneinfo/Europe/London"
    assert first["authorized_keys"] == 1
    assert "HUB_TIMEZONE=Europe/London" in first["hub_env"]
    assert "HUB_SERVER_URL" not in first["hub_env"]  # the hostile URL was refused
    assert PSK not in booted["setup_after"]
    assert "wifi_psk was read and removed" in booted["setup_after"]
    assert booted["second"]["hostname"] == "hub-test"
