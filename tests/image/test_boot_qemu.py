"""Boot journey of the built image in QEMU (-M virt, TCG, Debian's QEMU U-Boot running the
image's own boot.scr): first boot, services, hub API with a reading sent over MQTT with the
device's generated credentials, a reboot that keeps the data, and a root slot left untouched.

One VM serves the whole module; the tests run in file order and build on each other.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt import publish

from image.config import REPO_DIR as ROOT
from image.qemu import Built
from tests.image.guest import SERVER_APIKEY, Guest, GuestError

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
DATA_SHIPPED_MIB = 256
SERVICES = ("mosquitto", "redis-server", "mariadb", "cydynni-hub-web", "cydynni-hub-worker",
            "ssh")
USER = {"username": "boottest", "password": "boot-test-password-1", "email": "t@example.org"}


def partition_sha256(disk: Path, number: int) -> str:
    """sha256 of one partition's bytes in an MBR disk image."""
    table = disk.read_bytes()[:512]
    entry = table[446 + 16 * (number - 1): 446 + 16 * number]
    start, size = (int.from_bytes(entry[8:12], "little"), int.from_bytes(entry[12:16], "little"))
    digest = hashlib.sha256()
    with disk.open("rb") as handle:
        handle.seek(start * 512)
        left = size * 512
        while left:
            block = handle.read(min(left, 1 << 22))
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def record_boot(built: Built, name: str, seconds: float) -> None:
    """Keep a boot figure in deploy/boot-test.json for `./build.sh bench image`."""
    report = built.deploy / "boot-test.json"
    figures = json.loads(report.read_text()) if report.is_file() else {}
    figures[name] = round(seconds, 1)
    report.write_text(json.dumps(figures, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def state() -> dict:
    """Values later tests need from earlier ones (API keys, feed id)."""
    return {}


@pytest.fixture(scope="module")
def guest(built: Built, tmp_path_factory) -> Iterator[Guest]:
    vm = Guest(built, tmp_path_factory.mktemp("qemu"))
    vm.root_a_sha256 = partition_sha256(vm.disk, 2)
    vm.start()
    try:
        vm.hub_ready_seconds = vm.wait_hub()
        vm.wait_ssh(timeout=120)
        record_boot(built, "first_boot_to_hub_ready_s", vm.hub_ready_seconds)
        summary = vm.boot_analysis(built.deploy / "boot-analyze-first.txt", "first boot")
        print(f"\n[boot] first boot: hub ready {vm.hub_ready_seconds:.1f} s after QEMU started; "
              f"{summary} (deploy/boot-analyze-first.txt)")
        yield vm
    finally:
        vm.kill()


def test_first_boot_reaches_multi_user_without_failed_units(guest: Guest) -> None:
    state = guest.ssh("systemctl is-system-running --wait", check=False, timeout=600).stdout
    failed = guest.ssh("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", f"failed units:\n{failed}"
    assert state.strip() == "running"


def test_root_is_read_only(guest: Guest) -> None:
    options = guest.ssh("findmnt -no OPTIONS /").stdout.split(",")
    assert "ro" in options
    assert guest.ssh("touch /usr/cydynni-write-test", check=False).returncode != 0


def test_root_is_slot_a_found_by_partuuid(guest: Guest) -> None:
    cmdline = guest.ssh("cat /proc/cmdline").stdout
    assert "rauc.slot=A" in cmdline and "root=PARTUUID=" in cmdline and "-02 " in cmdline
    assert guest.ssh("findmnt -no SOURCE /").stdout.strip() == "/dev/vda2"


def test_data_is_mounted_and_grown(guest: Guest) -> None:
    source, size = guest.ssh("findmnt -bno SOURCE,SIZE /data").stdout.split()
    assert source == "/dev/vda4"
    assert int(size) > 2 * DATA_SHIPPED_MIB * 2**20, "grown into the 2 GiB added to the copy"
    assert guest.ssh("findmnt -no SOURCE /boot/firmware").stdout.strip() == "/dev/vda1"


def udev_initialized(guest: Guest, syspath: str) -> bool:
    """Whether udev processed the device (a coldplug or hotplug event ran its rules)."""
    properties = guest.ssh(f"udevadm info --query=property --path={syspath}").stdout
    return "USEC_INITIALIZED=" in properties


def test_coldplug_replays_what_the_hub_uses(guest: Guest) -> None:
    """The narrowed coldplug (systemd-udev-trigger.service.d/cydynni-coldplug.conf): the
    serial console, the network and the disk went through udev; a virtual console, the
    drivers and the CPUs did not; the one module rule in the image (60-block.rules) ran."""
    assert udev_initialized(guest, "/sys/class/tty/ttyAMA0")
    assert guest.ssh("systemctl is-active serial-getty@ttyAMA0.service",
                     check=False).stdout.strip() == "active"
    nics = [name for name in guest.ssh("ls /sys/class/net").stdout.split() if name != "lo"]
    assert nics and all(udev_initialized(guest, f"/sys/class/net/{name}") for name in nics)
    assert udev_initialized(guest, "/sys/class/block/vda4")
    assert guest.ssh("cat /sys/module/block/parameters/events_dfl_poll_msecs").stdout.strip() \
        == "2000"
    assert not udev_initialized(guest, "/sys/class/tty/tty5")
    assert not udev_initialized(guest, "/sys/bus/platform/drivers/virtio-mmio")
    # QEMU's cortex-a72 has the crypto extensions (a Pi 3 or 4 has not): the CPUs' modalias
    # would have loaded aes-ce, sha2-ce and the rest; nothing asked for them.
    features = guest.ssh("cat /sys/devices/system/cpu/modalias").stdout
    assert ",0003," in features, features  # the AES feature, which aes-ce matches
    modules = guest.ssh("cut -d' ' -f1 /proc/modules").stdout.split()
    assert not {"aes_ce_blk", "sha2_ce", "ghash_ce", "sha1_ce"} & set(modules), modules


@pytest.mark.parametrize("unit", SERVICES)
def test_service_active(guest: Guest, unit: str) -> None:
    result = guest.ssh(f"systemctl is-active {unit}", check=False)
    assert result.stdout.strip() == "active", guest.ssh(
        f"systemctl status --no-pager -l {unit} | tail -n 20", check=False).stdout


def test_headless_setup_file_applied(guest: Guest) -> None:
    assert guest.ssh("hostname").stdout.strip() == "cydynni-test"


def test_booted_slot_marked_good(guest: Guest) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        commit = guest.ssh("systemctl is-active cydynni-ota-commit", check=False).stdout.strip()
        if commit not in ("activating", "inactive"):
            break
        time.sleep(5)
    assert commit == "active", guest.ssh("journalctl -b -u cydynni-ota-commit --no-pager",
                                         check=False).stdout
    env = dict(line.split("=", 1) for line in guest.ssh("fw_printenv").stdout.splitlines())
    assert env["BOOT_A_LEFT"] == "3", env
    assert env["BOOT_ORDER"].split()[0] == "A"
    assert "rootfs.0" in guest.ssh("rauc status --output-format=shell").stdout


def test_display_is_served_from_the_image(guest: Guest) -> None:
    """A fresh hub's browser gets the first-run page (with the setup-code field) on port 80,
    and the display's own and npm-built assets come from the image unchanged."""
    with urllib.request.urlopen(guest.url(""), timeout=30) as page:  # follows the 303
        assert page.url.endswith("/setup"), page.url
        assert page.headers.get_content_type() == "text/html"
        assert 'name="setup_code"' in page.read().decode()
    with urllib.request.urlopen(guest.url("static/app.css"), timeout=30) as css:
        assert css.headers.get_content_type() == "text/css"
        assert css.headers["X-Content-Type-Options"] == "nosniff"
        assert css.read() == (ROOT / "hub/web/static/app.css").read_bytes()
    with urllib.request.urlopen(guest.url("static/vendor/uPlot.iife.min.js"), timeout=30) as js:
        assert js.read() == (ROOT / "node_modules/uplot/dist/uPlot.iife.min.js").read_bytes()


def test_reading_published_over_mqtt_appears_in_feed_api(guest: Guest, state: dict) -> None:
    config = tomllib.loads(guest.ssh("cat /data/hub/hub.toml").stdout)
    # The first account needs the setup code firstboot made (shown on the console).
    issue = guest.ssh("cat /run/issue.d/50-cydynni-setup.issue", check=False).stdout
    assert config["setup_code"] in issue, issue
    status, refused = guest.http("user/register.json", data=USER)
    assert status == 403 and "setup code" in refused["message"], refused
    status, registered = guest.http("user/register.json",
                                    data={**USER, "setup_code": config["setup_code"]})
    assert status == 200 and registered["success"], registered
    status, keys = guest.http("user/auth.json", data=USER)
    assert status == 200 and keys["success"], keys
    apikey = keys["apikey_write"]
    auth = {"username": config.get("mqtt_user", "hub"), "password": config["mqtt_password"]}

    def send(value: float) -> None:
        publish.single("emon/boottest/power", str(value), hostname="127.0.0.1",
                       port=guest.ports["mqtt"], auth=auth, qos=1)

    send(100.0)
    inputs, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline:
        _, inputs = guest.http("input/get.json", apikey=apikey)
        if isinstance(inputs, dict) and "power" in inputs.get("boottest", {}):
            break
        time.sleep(2)
    assert isinstance(inputs, dict) and "power" in inputs.get("boottest", {}), inputs
    entry = inputs["boottest"]["power"]
    input_id = entry.get("id")
    if input_id is None:
        _, listed = guest.http("input/list.json", apikey=apikey)
        input_id = next(i["id"] for i in listed if i["nodeid"] == "boottest"
                        and i["name"] == "power")
    status, created = guest.http("feed/create.json", apikey=apikey, name="boottest-power",
                                 tag="boottest", datatype=1, engine=5,
                                 options=json.dumps({"interval": 10}))
    assert status == 200 and created["success"], created
    feed_id = created["feedid"]
    status, processed = guest.http("input/process/set.json", apikey=apikey,
                                   data={"inputid": input_id, "processlist": f"1:{feed_id}"},
                                   inputid=input_id)
    assert status == 200 and processed["success"], processed
    value, deadline = None, time.monotonic() + 90
    while time.monotonic() < deadline:
        send(123.5)
        time.sleep(5)
        _, value = guest.http("feed/value.json", apikey=apikey, id=feed_id)
        if value == 123.5:
            break
    assert value == 123.5
    state.update(apikey=apikey, feed_id=feed_id)


def test_server_entry_applied_and_its_key_removed(guest: Guest, state: dict) -> None:
    boot_file = guest.ssh("cat /boot/firmware/cydynni.txt").stdout
    assert SERVER_APIKEY not in boot_file and "server_apikey was read and removed" in boot_file
    status, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline:  # the worker takes it up 60 s after it started
        _, status = guest.http("sync/status.json", apikey=state["apikey"])
        if isinstance(status, dict) and status.get("state") == "provisioning failed":
            break
        time.sleep(3)
    assert isinstance(status, dict) and status["state"] == "provisioning failed", status
    assert "cannot reach the server" in status["message"] and not status["provisioned"]
    assert SERVER_APIKEY not in json.dumps(status)
    request = guest.ssh("stat -c '%a %U' /data/hub/sync/provision.json").stdout.split()
    assert request == ["600", "cydynni"]  # kept for the next try, private to the hub


def test_data_survives_reboot(guest: Guest, state: dict, built: Built) -> None:
    if "feed_id" not in state:
        pytest.fail("no reading was stored by the previous test")
    machine_id = guest.ssh("cat /etc/machine-id").stdout.strip()
    # Power off and on again, as a household unplugs the hub: the later boot is timed from
    # power-on, like the first.
    guest.ssh("systemctl poweroff", check=False, timeout=30)
    guest.wait_exit(timeout=180)
    guest.console = guest.workdir / "console-later.log"
    guest.start()
    ready = guest.wait_hub()
    guest.wait_ssh(timeout=120)
    record_boot(built, "later_boot_to_hub_ready_s", ready)
    summary = guest.boot_analysis(built.deploy / "boot-analyze-later.txt", "later boot")
    print(f"\n[boot] later boot: hub ready {ready:.1f} s after QEMU started; {summary} "
          f"(deploy/boot-analyze-later.txt)")
    # Nothing changed since the first boot: the database step only compared its stamp.
    journal = guest.ssh("journalctl -b -o cat -u cydynni-hub-database.service").stdout
    assert "unchanged since the last run" in journal, journal
    # MariaDB's system tables were upgraded for this image on the first boot, not again.
    first = guest.ssh("journalctl -b -1 -o cat -u mariadb.service").stdout
    assert "MariaDB system tables are current for this image" in first, first
    again = guest.ssh("journalctl -b -o cat -u mariadb.service").stdout
    assert "Started mariadb.service" in again and "new root image" not in again, again
    assert "Upgrading MariaDB tables" not in again, again  # Debian's debian-start
    assert guest.ssh("cmp /etc/cydynni-image-id /data/mysql/cydynni-image-id",
                     check=False).returncode == 0
    assert guest.ssh("cat /proc/cmdline").stdout.count("rauc.slot=A") == 1
    # The initramfs put the stored machine-id in place before PID 1 started (a transient one
    # would be new at every boot: a new journal directory, DHCP and IPv6 identity each time).
    assert guest.ssh("cat /etc/machine-id /data/etc/machine-id").stdout.split() == [machine_id] * 2
    console = guest.console.read_text(errors="replace")
    # The initramfs replayed only buses and storage (overlays/…/init-top/udev).
    assert "cydynni: initramfs coldplug of buses and storage only" in console
    # U-Boot took /config/bootdelay = 0 from its DTB (image/qemu.py boot_command, as the Pi's
    # firmware DTBs carry it): no 2 s countdown before boot.scr.
    assert re.search(r"Hit any key to stop autoboot: +0 *\n", console), console[:3000]
    # The first boot's journal is still there for support (journalctl fails without it).
    assert guest.ssh("journalctl -b -1 -n 1 -o cat --no-pager").stdout.strip()
    status, keys = guest.http("user/auth.json", data=USER)
    assert status == 200 and keys["apikey_write"] == state["apikey"]
    _, value = guest.http("feed/value.json", apikey=state["apikey"], id=state["feed_id"])
    assert value == 123.5
    failed = guest.ssh("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == ""


def test_nothing_tried_to_write_to_root(guest: Guest) -> None:
    journal = guest.ssh("journalctl --no-pager -o cat | grep -i 'read-only file system' || true",
                        timeout=300).stdout.splitlines()
    # systemd touches the target of a file bind mount (/etc/hostname) before mounting over
    # it; on a read-only root it says so and mounts anyway. Not a write by a service.
    attempts = [line for line in journal if "Failed to create mount point" not in line]
    assert attempts == [], "writes to the read-only root were attempted:\n" + "\n".join(attempts)


def test_nothing_written_to_root(guest: Guest) -> None:
    guest.ssh("systemctl poweroff", check=False, timeout=30)
    try:
        guest.wait_exit(timeout=180)
    except GuestError:
        guest.kill()
        raise
    assert partition_sha256(guest.disk, 2) == guest.root_a_sha256
