"""cydynni-firstboot-secrets against a temporary root: every secret generated once, kept
across reruns and power cuts, two devices share none, the broker file matches hub.toml.
(The boot test proves the same files work with real Mosquitto, MariaDB and sshd.)"""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
import re
import stat
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.roles.tools import apt_install


@pytest.fixture(autouse=True, scope="module")
def _ssh_keygen() -> None:
    apt_install("openssh-client")  # ssh-keygen makes the host keys

SECRETS = ("db_password", "mqtt_password", "mqtt_admin_password", "session_key")


def run(firstboot: ModuleType, root: Path) -> int:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return firstboot.main(["--root", str(root), "--hub-owner", user, "--hub-group", group,
                           "--mosquitto-user", user])


def hub_toml(firstboot: ModuleType, root: Path) -> dict:
    return tomllib.loads((root / firstboot.HUB_TOML).read_text())


def dynsec_client(firstboot: ModuleType, root: Path, username: str) -> dict:
    config = json.loads((root / firstboot.DYNSEC_JSON).read_text())
    return next(c for c in config["clients"] if c["username"] == username)


def verifies(client: dict, password: str) -> bool:
    """Mosquitto's check: PBKDF2-SHA512 of the password with the stored salt."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(client["salt"]),
                                 client["iterations"], 64)
    return digest == base64.b64decode(client["password"])


def test_first_run_generates_every_secret(firstboot, tmp_path, capsys) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    assert run(firstboot, tmp_path) == 0
    out = capsys.readouterr().out

    settings = hub_toml(firstboot, tmp_path)
    assert all(len(str(settings[key])) >= 32 for key in SECRETS)
    assert settings["db_user"] == "hub" and settings["mqtt_admin_user"] == "cydynni-admin"
    assert stat.S_IMODE((tmp_path / firstboot.HUB_TOML).stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / firstboot.DYNSEC_JSON).stat().st_mode) == 0o600
    # The ID systemd used this boot is kept, so the journal stays in one directory.
    assert (tmp_path / firstboot.MACHINE_ID).read_text() == "0123456789abcdef0123456789abcdef\n"
    keys = sorted(p.name for p in (tmp_path / firstboot.SSH_DIR).glob("ssh_host_*"))
    assert keys == sorted(f"ssh_host_{t}_key{s}" for t in firstboot.SSH_KEY_TYPES
                          for s in ("", ".pub"))
    for key in SECRETS:
        assert str(settings[key]) not in out
    assert "db_password generated" in out


def test_broker_accounts_match_hub_toml_and_acls(firstboot, tmp_path) -> None:
    run(firstboot, tmp_path)
    settings = hub_toml(firstboot, tmp_path)
    admin = dynsec_client(firstboot, tmp_path, "cydynni-admin")
    hub = dynsec_client(firstboot, tmp_path, "hub")
    assert verifies(admin, settings["mqtt_admin_password"])
    assert verifies(hub, settings["mqtt_password"])
    assert not verifies(hub, settings["mqtt_admin_password"])
    config = json.loads((tmp_path / firstboot.DYNSEC_JSON).read_text())
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert {a["topic"] for a in roles["cydynni-admin"]} == {"$CONTROL/dynamic-security/#"}
    assert {a["topic"] for a in roles["hub"]} == {"#"}
    assert config["defaultACLAccess"]["publishClientSend"] is False


def test_rerun_changes_nothing(firstboot, tmp_path, capsys) -> None:
    run(firstboot, tmp_path)
    files = [firstboot.HUB_TOML, firstboot.DYNSEC_JSON, firstboot.MACHINE_ID,
             f"{firstboot.SSH_DIR}/ssh_host_ed25519_key"]
    before = {f: (tmp_path / f).read_bytes() for f in files}
    capsys.readouterr()
    run(firstboot, tmp_path)
    assert {f: (tmp_path / f).read_bytes() for f in files} == before
    assert "generated" not in capsys.readouterr().out


def test_two_devices_share_no_secret(firstboot, tmp_path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    run(firstboot, one)
    run(firstboot, two)
    first, second = hub_toml(firstboot, one), hub_toml(firstboot, two)
    assert all(first[key] != second[key] for key in SECRETS)
    assert (one / firstboot.MACHINE_ID).read_text() != (two / firstboot.MACHINE_ID).read_text()
    key = f"{firstboot.SSH_DIR}/ssh_host_ed25519_key.pub"
    assert (one / key).read_text() != (two / key).read_text()


def test_power_cut_before_broker_file_is_completed_with_the_same_passwords(firstboot,
                                                                           tmp_path) -> None:
    run(firstboot, tmp_path)
    settings = hub_toml(firstboot, tmp_path)
    (tmp_path / firstboot.DYNSEC_JSON).unlink()  # cut after hub.toml, before the JSON
    (tmp_path / f"{firstboot.SSH_DIR}/ssh_host_rsa_key.pub").unlink()  # half a key pair
    (tmp_path / "data/hub/.hub.toml.abc123").write_text("partial")  # a temp file left over

    assert run(firstboot, tmp_path) == 0
    assert hub_toml(firstboot, tmp_path) == settings
    assert verifies(dynsec_client(firstboot, tmp_path, "hub"), settings["mqtt_password"])
    assert (tmp_path / f"{firstboot.SSH_DIR}/ssh_host_rsa_key.pub").exists()


def test_device_accounts_added_later_survive_and_a_stale_hash_is_repaired(firstboot,
                                                                          tmp_path) -> None:
    run(firstboot, tmp_path)
    path = tmp_path / firstboot.DYNSEC_JSON
    config = json.loads(path.read_text())
    config["clients"].append({"username": "heatpump-1", "password": "x", "salt": "eA==",
                              "iterations": 101})
    next(c for c in config["clients"] if c["username"] == "hub")["password"] = "c3RhbGU="
    path.write_text(json.dumps(config))

    run(firstboot, tmp_path)
    names = [c["username"] for c in json.loads(path.read_text())["clients"]]
    assert "heatpump-1" in names
    assert verifies(dynsec_client(firstboot, tmp_path, "hub"),
                    hub_toml(firstboot, tmp_path)["mqtt_password"])


def test_user_settings_in_hub_toml_are_kept(firstboot, tmp_path) -> None:
    path = tmp_path / firstboot.HUB_TOML
    path.parent.mkdir(parents=True)
    path.write_text('flush_interval = 60\nweb_port = 8080\ndb_password = "chosen"\n')
    run(firstboot, tmp_path)
    settings = hub_toml(firstboot, tmp_path)
    assert settings["flush_interval"] == 60 and settings["db_password"] == "chosen"
    assert settings["session_key"]


def test_corrupt_hub_toml_is_never_overwritten(firstboot, tmp_path, capsys) -> None:
    path = tmp_path / firstboot.HUB_TOML
    path.parent.mkdir(parents=True)
    path.write_text("db_password = [unterminated\n")
    assert run(firstboot, tmp_path) == 1
    assert "not valid TOML" in capsys.readouterr().out
    assert path.read_text() == "db_password = [unterminated\n"


def test_hub_toml_keys_are_hub_settings(firstboot, tmp_path) -> None:
    """Every key this script writes is a setting of hub/config.py (the authority)."""
    from hub.config import SETTINGS

    run(firstboot, tmp_path)
    assert set(hub_toml(firstboot, tmp_path)) <= {s.name for s in SETTINGS}


def test_setup_code_is_generated_once_shown_on_console_and_boot_partition(firstboot, tmp_path,
                                                                          capsys) -> None:
    (tmp_path / "boot/firmware").mkdir(parents=True)
    assert run(firstboot, tmp_path) == 0
    code = hub_toml(firstboot, tmp_path)["setup_code"]
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", code)
    assert code in (tmp_path / firstboot.SETUP_CODE_TXT).read_text()
    for note in firstboot.CONSOLE_NOTES:
        assert code in (tmp_path / note).read_text()
    assert code not in capsys.readouterr().out  # the journal gets names, never values
    assert run(firstboot, tmp_path) == 0
    assert hub_toml(firstboot, tmp_path)["setup_code"] == code  # never replaced


def test_setup_code_from_the_label_in_cydynni_txt(firstboot, tmp_path) -> None:
    (tmp_path / "boot/firmware").mkdir(parents=True)
    (tmp_path / firstboot.HEADLESS_TXT).write_text("hostname = hub\nsetup_code = K7PQ-2MXD-9RTA\n")
    assert run(firstboot, tmp_path) == 0
    assert hub_toml(firstboot, tmp_path)["setup_code"] == "K7PQ-2MXD-9RTA"


def test_two_devices_get_different_setup_codes_and_no_boot_partition_is_fine(firstboot,
                                                                           tmp_path) -> None:
    codes = set()
    for name in ("a", "b"):
        assert run(firstboot, tmp_path / name) == 0  # no boot/firmware mounted: still 0
        codes.add(hub_toml(firstboot, tmp_path / name)["setup_code"])
    assert len(codes) == 2
