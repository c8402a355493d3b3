"""cydynni-headless-config against a temporary root: hostile values refused, good ones applied
once, the Wi-Fi key removed from the boot file, reruns idempotent."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import ModuleType

import pytest

SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICDX6ubsVw4QGjQaaWG1YF1x9/nhpuBWW4qqcbEAR+yf"
           " roles-test@example")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fake device root: a boot FAT directory and a zoneinfo with two zones."""
    (tmp_path / "boot/firmware").mkdir(parents=True)
    for zone in ("Europe/London", "Etc/UTC"):
        path = tmp_path / "usr/share/zoneinfo" / zone
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"TZif2" + bytes(40))
    return tmp_path


def write_setup(root: Path, text: str | bytes) -> Path:
    path = root / "boot/firmware/cydynni.txt"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def run(headless: ModuleType, root: Path, capsys: pytest.CaptureFixture) -> str:
    assert headless.main(["--root", str(root)]) == 0
    return capsys.readouterr().out


def test_apply_good_file_writes_every_setting(headless, root, capsys) -> None:
    setup = write_setup(root, "wifi_ssid = Home Net\nwifi_psk = 'my secret key'\n"
                              "wifi_country = gb\nhostname = Kitchen-Hub\n"
                              f"ssh_authorized_key = {SSH_KEY}\ntimezone = Europe/London\n"
                              "server_url = https://energy.example.org/hub\n")
    out = run(headless, root, capsys)

    keyfile = root / headless.WIFI_KEYFILE
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    text = keyfile.read_text()
    assert f"ssid={''.join(f'{b};' for b in b'Home Net')}" in text
    assert "psk=my secret key" in text
    assert (root / headless.COUNTRY_FILE).read_text() == "GB\n"
    assert (root / headless.HOSTNAME_FILE).read_text() == "kitchen-hub\n"
    assert (root / headless.AUTHORIZED_KEYS).read_text() == SSH_KEY + "\n"
    assert (root / headless.LOCALTIME_LINK).readlink() == Path(
        "/usr/share/zoneinfo/Europe/London")
    env = (root / headless.HUB_ENV_FILE).read_text()
    assert "HUB_TIMEZONE=Europe/London\n" in env
    assert "HUB_SERVER_URL=https://energy.example.org/hub\n" in env
    assert "my secret key" not in setup.read_text()
    assert "# wifi_psk was read and removed" in setup.read_text()
    assert "my secret key" not in out


def test_rerun_of_unchanged_file_does_nothing(headless, root, capsys) -> None:
    write_setup(root, "hostname = hub-one\nwifi_ssid = Net\nwifi_psk = password123\n")
    run(headless, root, capsys)
    hostname = root / headless.HOSTNAME_FILE
    hostname.write_text("changed-by-hand\n")

    assert "unchanged since it was last applied" in run(headless, root, capsys)
    assert hostname.read_text() == "changed-by-hand\n"


def test_ssid_without_psk_keeps_the_stored_key_of_the_same_network(headless, root,
                                                                    capsys) -> None:
    setup = write_setup(root, "wifi_ssid = Net\nwifi_psk = password123\n")
    run(headless, root, capsys)
    setup.write_text(setup.read_text() + "hostname = renamed\n")  # user edits again
    run(headless, root, capsys)
    assert "psk=password123" in (root / headless.WIFI_KEYFILE).read_text()

    write_setup(root, "wifi_ssid = Other Net\n")
    assert "open network" in run(headless, root, capsys)
    assert "psk=" not in (root / headless.WIFI_KEYFILE).read_text()


def test_windows_file_with_bom_and_crlf_is_applied_and_keeps_crlf(headless, root,
                                                                 capsys) -> None:
    setup = write_setup(root, "\ufeffhostname = win-hub\r\nwifi_ssid = Net\r\n"
                              "wifi_psk = password123\r\n")
    run(headless, root, capsys)
    assert (root / headless.HOSTNAME_FILE).read_text() == "win-hub\n"
    assert setup.read_bytes().count(b"\r\n") == 3
    assert b"password123" not in setup.read_bytes()


@pytest.mark.parametrize(("line", "key"), [
    ("hostname = hub;rm -rf /", "hostname"),
    ("hostname = -leading", "hostname"),
    ("hostname = " + "a" * 64, "hostname"),
    ("hostname = 12345", "hostname"),
    ("wifi_ssid = " + "x" * 33, "wifi_ssid"),
    ("wifi_ssid = bad\x07bell", "wifi_ssid"),
    ("wifi_country = GBR", "wifi_country"),
    ("wifi_country = ../", "wifi_country"),
    ("timezone = ../../etc/passwd", "timezone"),
    ("timezone = Mars/Olympus", "timezone"),
    ("server_url = javascript:alert(1)", "server_url"),
    ("server_url = https://user:pw@example.org/", "server_url"),
    ("server_url = https://example.org/a b", "server_url"),
    ("server_url = https://example.org:99999/", "server_url"),
    ('ssh_authorized_key = command="/bin/sh" ' + SSH_KEY, "ssh_authorized_key"),
    ("ssh_authorized_key = ssh-ed25519 not-base64!", "ssh_authorized_key"),
    ("ssh_authorized_key = ssh-rsa " + SSH_KEY.split()[1], "ssh_authorized_key"),
])
def test_hostile_value_is_refused_and_the_rest_applied(headless, root, capsys, line,
                                                       key) -> None:
    # One good value of another key next to the hostile one.
    control = ("wifi_country = DE", headless.COUNTRY_FILE, "DE\n")
    if key == "wifi_country":
        control = ("hostname = control-hub", headless.HOSTNAME_FILE, "control-hub\n")
    write_setup(root, f"{line}\n{control[0]}\n")
    out = run(headless, root, capsys)
    assert f"[ERROR] {key} rejected" in out
    assert line.split("=", 1)[1].strip() not in out  # values are never echoed
    assert (root / control[1]).read_text() == control[2]
    for path in (headless.HOSTNAME_FILE, headless.WIFI_KEYFILE, headless.AUTHORIZED_KEYS,
                 headless.LOCALTIME_LINK, headless.HUB_ENV_FILE, headless.COUNTRY_FILE):
        if path != control[1]:
            assert not (root / path).exists() and not (root / path).is_symlink()


@pytest.mark.parametrize("psk", ["short", "x" * 64, "non-ascii-ключ-123"])
def test_bad_psk_is_refused_but_still_removed_from_the_file(headless, root, capsys,
                                                            psk) -> None:
    setup = write_setup(root, f"wifi_ssid = Net\nwifi_psk = {psk}\n")
    out = run(headless, root, capsys)
    assert "[ERROR] wifi_psk rejected" in out
    assert psk not in setup.read_text()


def test_hex_psk_is_accepted(headless, root, capsys) -> None:
    write_setup(root, "wifi_ssid = Net\nwifi_psk = " + "AB" * 32 + "\n")
    run(headless, root, capsys)
    assert "psk=" + "ab" * 32 in (root / headless.WIFI_KEYFILE).read_text()


def test_psk_backslash_and_leading_space_are_keyfile_escaped(headless, root, capsys) -> None:
    write_setup(root, "wifi_ssid = Net\nwifi_psk = ' back\\slash'\n")
    run(headless, root, capsys)
    assert "psk=\\sback\\\\slash" in (root / headless.WIFI_KEYFILE).read_text()


@pytest.mark.parametrize(("raw", "message"), [
    (b"hostname = x\n" + b"#" * (64 * 1024), "larger than"),
    (b"hostname = caf\xe9\n", "not UTF-8"),
    (b"hostname = a\x00b\n", "NUL"),
])
def test_unusable_file_is_reported_and_nothing_applied(headless, root, capsys, raw,
                                                       message) -> None:
    write_setup(root, raw)
    out = run(headless, root, capsys)
    assert message in out and "[ERROR]" in out
    assert not (root / headless.HOSTNAME_FILE).exists()


def test_unknown_keys_and_junk_lines_are_reported_not_fatal(headless, root, capsys) -> None:
    write_setup(root, "root_password = hunter2\njust some words\nhostname = ok-hub\n")
    out = run(headless, root, capsys)
    assert "line 1: unknown key" in out and "line 2: not key=value" in out
    assert "hunter2" not in out
    assert (root / headless.HOSTNAME_FILE).read_text() == "ok-hub\n"


def test_several_ssh_keys_are_all_kept(headless, root, capsys) -> None:
    other = SSH_KEY.replace("roles-test@example", "second@example")
    write_setup(root, f"ssh_authorized_key = {SSH_KEY}\nssh_authorized_key = {other}\n")
    run(headless, root, capsys)
    assert (root / headless.AUTHORIZED_KEYS).read_text().splitlines() == [SSH_KEY, other]


def test_hostname_is_rewritten_in_place_for_its_bind_mount(headless, root, capsys) -> None:
    hostname = root / headless.HOSTNAME_FILE
    hostname.parent.mkdir(parents=True)
    hostname.write_text("cydynni\n")
    inode = hostname.stat().st_ino
    write_setup(root, "hostname = renamed\n")
    run(headless, root, capsys)
    assert hostname.stat().st_ino == inode  # /etc/hostname is a bind of this inode
    assert hostname.read_text() == "renamed\n"


def test_missing_file_is_fine(headless, root, capsys) -> None:
    assert "nothing to apply" in run(headless, root, capsys)


def test_setup_code_is_a_known_key(headless) -> None:
    """Read by cydynni-firstboot-secrets (the code on the box's label), not an unknown key."""
    parsed = headless.parse("setup_code = abcd-efgh-jkmn\n")
    assert parsed.problems == []


UPDATE_TOKEN = "Tok3n-for-the-fleet_0123456789ab"


def test_update_server_goes_to_the_agent_file_and_the_token_leaves_the_boot_file(
        headless, root, capsys) -> None:
    from ota.agent.config import validate

    setup = write_setup(root, "update_server_url = https://fleet.example:8060/\n"
                              "update_device_id = cydynni-0042\n"
                              f"update_token = {UPDATE_TOKEN}\n")
    out = run(headless, root, capsys)
    assert "update_server_url, update_device_id, update_token" in out
    agent_file = root / "data/ota/agent.json"
    assert stat.S_IMODE(agent_file.stat().st_mode) == 0o600
    agent = json.loads(agent_file.read_text())
    # exactly what the agent accepts (it validates its file the same way)
    assert validate(agent) == {"server_url": "https://fleet.example:8060/", "tenant": "DEFAULT",
                               "controller_id": "cydynni-0042", "token": UPDATE_TOKEN}
    assert UPDATE_TOKEN not in setup.read_text() and UPDATE_TOKEN not in out
    assert "update_device_id = cydynni-0042" in setup.read_text()


def test_update_server_keeps_the_agents_other_settings(headless, root, capsys) -> None:
    agent_file = root / "data/ota/agent.json"
    agent_file.parent.mkdir(parents=True)
    agent_file.write_text(json.dumps({"server_url": "https://old.example/", "tenant": "T",
                                      "controller_id": "old", "token": "x",
                                      "poll_seconds": 60}))
    write_setup(root, "update_server_url = http://10.0.2.100/\nupdate_allow_http = yes\n"
                      f"update_device_id = hub-7\nupdate_token = {UPDATE_TOKEN}\n")
    run(headless, root, capsys)
    agent = json.loads(agent_file.read_text())
    assert agent == {"server_url": "http://10.0.2.100/", "tenant": "DEFAULT",
                     "controller_id": "hub-7", "token": UPDATE_TOKEN, "poll_seconds": 60}


@pytest.mark.parametrize(("lines", "why"), [
    (f"update_server_url = http://fleet.example/\nupdate_device_id = a\n"
     f"update_token = {UPDATE_TOKEN}\n", "plain http"),
    ("update_server_url = https://fleet.example/\nupdate_device_id = a\n", "needs"),
    (f"update_server_url = https://fleet.example/\nupdate_device_id = a b\n"
     f"update_token = {UPDATE_TOKEN}\n", "update_device_id"),
    ("update_server_url = https://fleet.example/\nupdate_device_id = a\n"
     f"update_token = {UPDATE_TOKEN}x\n", "update_token"),
    ("update_server_url = https://fleet.example/?x=1\nupdate_device_id = a\n"
     f"update_token = {UPDATE_TOKEN}\n", "update_server_url"),
    (f"update_device_id = a\nupdate_token = {UPDATE_TOKEN}\n", "without a valid"),
])
def test_bad_update_server_settings_are_refused_and_the_token_still_removed(
        headless, root, capsys, lines, why) -> None:
    setup = write_setup(root, lines)
    out = run(headless, root, capsys)
    assert why in out
    assert not (root / "data/ota/agent.json").exists()
    assert UPDATE_TOKEN not in setup.read_text() and UPDATE_TOKEN not in out
