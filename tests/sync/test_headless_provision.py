"""cydynni.txt → a provisioning request for the hub: written 0600 on /data, secrets removed
from the boot file, bad values refused; the hub applies it (tests/sync/test_provision.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.roles.conftest import load_script

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def headless():
    return load_script("cydynni-headless-config")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "boot/firmware").mkdir(parents=True)
    return tmp_path


def apply(headless, root: Path, text: str) -> tuple[Path, str]:
    setup = root / "boot/firmware/cydynni.txt"
    setup.write_text(text)
    assert headless.main(["--root", str(root)]) == 0
    return setup, setup.read_text()


def test_server_key_becomes_a_private_request_and_leaves_the_boot_file(headless, root,
                                                                       capsys):
    _, text = apply(headless, root, f"server_url = https://energy.example.org/\n"
                                        f"server_apikey = {KEY}\n")
    request = root / headless.PROVISION_FILE
    assert stat.S_IMODE(request.stat().st_mode) == 0o600
    assert stat.S_IMODE(request.parent.stat().st_mode) == 0o700
    assert json.loads(request.read_text()) == {
        "url": "https://energy.example.org/", "apikey": KEY, "username": "", "password": "",
        "allow_http": False}
    assert KEY not in text and "# server_apikey was read and removed" in text
    assert KEY not in capsys.readouterr().out


def test_username_and_password_are_passed_on_and_the_password_removed(headless, root):
    _, text = apply(headless, root, "server_url = https://energy.example.org/\n"
                                    "server_username = household\nserver_password = s3cret!\n")
    request = json.loads((root / headless.PROVISION_FILE).read_text())
    assert (request["username"], request["password"]) == ("household", "s3cret!")
    assert "s3cret!" not in text and "server_username = household" in text


def test_plain_http_needs_the_explicit_flag(headless, root, capsys):
    _, text = apply(headless, root, f"server_url = http://energy.example.org/\n"
                                    f"server_apikey = {KEY}\n")
    assert not (root / headless.PROVISION_FILE).exists()
    assert "server_allow_http" in capsys.readouterr().out
    assert KEY not in text  # a secret leaves the file even when it is not applied
    apply(headless, root, f"server_url = http://energy.example.org/\nserver_apikey = {KEY}\n"
                          "server_allow_http = yes\n")
    assert json.loads((root / headless.PROVISION_FILE).read_text())["allow_http"] is True


@pytest.mark.parametrize("line", ["server_apikey = short", "server_apikey = 0123456789abcdef'; x",
                                  "server_allow_http = maybe"])
def test_bad_server_values_are_refused(headless, root, capsys, line):
    apply(headless, root, f"server_url = https://energy.example.org/\n{line}\n")
    assert not (root / headless.PROVISION_FILE).exists()
    assert "[ERROR] server_" in capsys.readouterr().out
